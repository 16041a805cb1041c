"""A finished (or stopped) search's outcome, :class:`SearchResult`, and how it is computed from evaluations.

The front and the hypervolume curve are drawn from the evaluations alone, so the
search and the report (which reads them back from a store) compute them the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hwnas.errors import ConfigError
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.objectives import (
    Constraint,
    Objective,
    hypervolume_series,
    normalisation_bounds,
    pareto_mask,
)


@dataclass(frozen=True)
class SearchResult:
    """What a search measured: every evaluation in order, the measured Pareto front, the hypervolume curve.

    ``pareto`` holds only real, feasible evaluations (sorted by the first
    objective); ``hypervolume[i]`` is the normalised hypervolume after
    ``i + 1`` evaluations. ``stopped_reason`` is empty when the budget was spent.
    """

    evaluations: tuple[Evaluation, ...]
    pareto: tuple[Evaluation, ...]
    hypervolume: tuple[float, ...]
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    strategy: str
    out: Path | None = None
    stopped_reason: str = ""

    @property
    def failed(self) -> tuple[Evaluation, ...]:
        return tuple(e for e in self.evaluations if not e.ok)

    def best(self, objective: str) -> Evaluation | None:
        """The feasible evaluation best in one objective."""
        matching = [o for o in self.objectives if o.name == objective]
        if not matching:
            raise ConfigError(
                f"{objective!r} is not an objective of this search",
                hint=f"objectives: {[o.name for o in self.objectives]}",
            )
        if not self.pareto:
            return None
        return min(self.pareto, key=lambda e: matching[0].minimised(e.values[objective]))


def build_result(
    evaluations: Sequence[Evaluation],
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    strategy: str,
    out: str | Path | None = None,
    stopped_reason: str = "",
) -> SearchResult:
    """The :class:`SearchResult` of a list of evaluations: front of the feasible ones, hypervolume curve."""
    objectives = tuple(objectives)
    F = np.array([e.minimised(objectives) for e in evaluations], dtype=float).reshape(
        len(evaluations), len(objectives)
    )
    feasible = np.array([e.feasible for e in evaluations], dtype=bool)
    lower, upper = normalisation_bounds(objectives, F[feasible])
    series = hypervolume_series(F, feasible, lower, upper) if len(evaluations) else np.zeros(0)
    front_index = (
        np.flatnonzero(feasible)[pareto_mask(F[feasible])]
        if feasible.any()
        else np.zeros(0, dtype=int)
    )
    front = sorted((evaluations[i] for i in front_index), key=lambda e: e.minimised(objectives)[0])
    return SearchResult(
        evaluations=tuple(evaluations),
        pareto=tuple(front),
        hypervolume=tuple(float(v) for v in series),
        objectives=objectives,
        constraints=tuple(constraints),
        strategy=strategy,
        out=None if out is None else Path(out),
        stopped_reason=stopped_reason,
    )
