"""What the report shows, computed from stored runs: fronts, comparable hypervolume curves, latency noise, gene changes.

Plain data for :mod:`hwnas.search_core.report_page` to lay out; reading the
runs is :mod:`hwnas.search_core.report_inputs`' job.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.objectives import (
    BUILTIN_OBJECTIVES,
    Constraint,
    Objective,
    parse_constraints,
    parse_objectives,
)
from hwnas.search_core.report_inputs import StoredRun
from hwnas.search_core.search_result import SearchResult, build_result

#: Metric names the latency provider stores beside ``latency`` (not objectives; shown in the latency columns).
REMEASURES = "latency_remeasures"
NOISY = "latency_noisy"


@dataclass(frozen=True)
class LatencySummary:
    """One candidate's latency samples: their statistics, re-measures and the noisy verdict.

    ``remeasures`` is ``None`` where the run did not record it (a user's
    function, an older store); ``noisy`` is then judged from the samples' CV.
    """

    samples: tuple[float, ...]
    median: float
    p90: float
    q25: float
    q75: float
    cv: float
    remeasures: int | None
    noisy: bool


def latency_summary(evaluation: Evaluation, cv_threshold: float) -> LatencySummary | None:
    """Statistics of an evaluation's stored latency samples, or ``None`` when it has none."""
    from hwnas.measurement.results import Statistics

    samples = evaluation.latency_samples
    if not samples:
        return None
    stats = Statistics.of(samples)
    q25, q75 = (float(q) for q in np.percentile(samples, [25, 75]))
    remeasures = evaluation.values.get(REMEASURES)
    noisy = evaluation.values.get(NOISY)
    return LatencySummary(
        samples=samples,
        median=stats.median,
        p90=stats.p90,
        q25=q25,
        q75=q75,
        cv=stats.cv,
        remeasures=None if remeasures is None else int(remeasures),
        noisy=stats.cv > cv_threshold if noisy is None else bool(noisy),
    )


def config_changes(
    config: Mapping[str, Any], reference: Mapping[str, Any]
) -> list[tuple[str, Any]]:
    """Genes of ``config`` whose value differs from ``reference``, in config order.

    A gene the reference has but ``config`` lacks (inactive in it, e.g. a
    shallower stage's blocks) is listed with value ``None``.
    """
    changes = [
        (name, value)
        for name, value in config.items()
        if reference.get(name, None) != value or name not in reference
    ]
    changes += [(name, None) for name in reference if name not in config]
    return changes


def format_changes(changes: Sequence[tuple[str, Any]]) -> str:
    """``s1.depth=3 s1.b0.kernel/expand=5/4 s1.b2=-`` (``-``: inactive in this subnet).

    Neighbouring genes of one block (same name up to the last dot) share one
    entry, and a block inactive as a whole is written once.
    """
    entries = []
    for prefix, group in itertools.groupby(changes, key=lambda item: item[0].rpartition(".")[0]):
        items = list(group)
        values = ["-" if value is None else str(value) for _, value in items]
        if len(items) == 1 or not prefix:
            entries += [f"{name}={value}" for (name, _), value in zip(items, values, strict=True)]
        elif all(value == "-" for value in values):
            entries.append(f"{prefix}=-")
        else:
            names = "/".join(name.rpartition(".")[2] for name, _ in items)
            entries.append(f"{prefix}.{names}={'/'.join(values)}")
    return " ".join(entries)


def format_config(config: Mapping[str, Any]) -> str:
    """A whole config in the compact form of :func:`format_changes`."""
    return format_changes(list(config.items()))


@dataclass(frozen=True)
class RunView:
    """One run as the report shows it: objectives, front, hypervolume curve, per-candidate latency.

    ``reference`` is the config every other is compared with (the front's
    first subnet, else the first evaluation); ``hv_shared`` says whether the
    hypervolume was normalised together with other runs (comparable curves).
    """

    run: StoredRun
    label: str
    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...]
    result: SearchResult
    front_keys: frozenset[str]
    reference: dict[str, Any] = field(hash=False)
    latency: tuple[LatencySummary | None, ...]
    hv_shared: bool

    @property
    def evaluations(self) -> tuple[Evaluation, ...]:
        return self.result.evaluations

    @functools.cached_property
    def _numbers(self) -> dict[str, int]:
        return {e.key: n for n, e in enumerate(self.evaluations, start=1)}

    def number(self, evaluation: Evaluation) -> int:
        """1-based position of ``evaluation`` in its run: the ``#`` the page shows."""
        return self._numbers[evaluation.key]

    def changes(self, evaluation: Evaluation) -> str:
        return format_changes(config_changes(evaluation.subnet.to_dict(), self.reference))

    def status(self, evaluation: Evaluation) -> str:
        """``front``, ``feasible``, ``infeasible`` or ``failed``."""
        if not evaluation.ok:
            return "failed"
        if not evaluation.feasible:
            return "infeasible"
        return "front" if evaluation.key in self.front_keys else "feasible"

    @property
    def target(self) -> str:
        target = self.run.meta.get("target")
        return (
            str(target.get("label") or target.get("spec") or "") if isinstance(target, dict) else ""
        )


def run_views(runs: Sequence[StoredRun]) -> list[RunView]:
    """Views of ``runs``; runs with the same objectives share hypervolume normalisation, so their curves compare."""
    parsed = [_objectives_of(run) for run in runs]
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, (objectives, _) in enumerate(parsed):
        groups.setdefault(tuple(f"{o.name}:{o.direction}" for o in objectives), []).append(i)
    views: list[RunView | None] = [None] * len(runs)
    labels = _labels(runs)
    for members in groups.values():
        objectives = parsed[members[0]][0]
        bounded = _shared_bounds(objectives, [runs[i].evaluations for i in members])
        for i in members:
            views[i] = _view(runs[i], labels[i], bounded, parsed[i][1], shared=len(members) > 1)
    return [v for v in views if v is not None]


def _objectives_of(run: StoredRun) -> tuple[tuple[Objective, ...], tuple[Constraint, ...]]:
    meta = run.meta
    specs = meta.get("objectives")
    if not isinstance(specs, list) or not specs:
        raise ConfigError(
            f"{run.path}: the run store names no objectives (meta 'objectives' is {specs!r})",
            hint="the store is damaged or was not written by `hwnas search`",
        )
    try:
        objectives = parse_objectives([str(s) for s in specs])
        constraints = parse_constraints([str(c) for c in meta.get("constraints") or []], objectives)
    except ConfigError as exc:
        raise ConfigError(
            f"{run.path}: stored objectives or constraints unreadable: {exc.message}"
        ) from None
    for index, evaluation in enumerate(run.evaluations):
        missing = [o.name for o in objectives if evaluation.ok and o.name not in evaluation.values]
        missing += [
            c.metric for c in constraints if evaluation.ok and c.metric not in evaluation.values
        ]
        if missing:
            raise ConfigError(
                f"{run.path}: evaluation {index + 1} ({evaluation.key}) has no {', '.join(missing)}",
                hint="the store is damaged or was not written by `hwnas search`",
            )
    return objectives, constraints


def _shared_bounds(
    objectives: tuple[Objective, ...], runs: Sequence[Sequence[Evaluation]]
) -> tuple[Objective, ...]:
    """The objectives bounded by the range of every run's feasible values (where that range is not empty)."""
    bounded = []
    for objective in objectives:
        values = [
            e.values[objective.name] for evaluations in runs for e in evaluations if e.feasible
        ]
        finite = [v for v in values if math.isfinite(v)]
        low, high = (min(finite), max(finite)) if finite else (0.0, 0.0)
        bounded.append(objective.with_bounds(low, high) if low < high else objective)
    return tuple(bounded)


def _view(
    run: StoredRun,
    label: str,
    objectives: tuple[Objective, ...],
    constraints: tuple[Constraint, ...],
    *,
    shared: bool,
) -> RunView:
    from hwnas.measurement.protocol import DEFAULT_PROTOCOL

    result = build_result(
        run.evaluations, objectives, constraints, str(run.meta.get("strategy", "?")), run.path
    )
    first = result.pareto[0] if result.pareto else (run.evaluations[0] if run.evaluations else None)
    threshold = DEFAULT_PROTOCOL.cv_threshold
    return RunView(
        run=run,
        label=label,
        objectives=tuple(Objective(o.name, o.direction, o.unit) for o in objectives),
        constraints=constraints,
        result=result,
        front_keys=frozenset(e.key for e in result.pareto),
        reference={} if first is None else first.subnet.to_dict(),
        latency=tuple(latency_summary(e, threshold) for e in run.evaluations),
        hv_shared=shared,
    )


def _labels(runs: Sequence[StoredRun]) -> list[str]:
    """Short names that tell the runs apart: the directory name, with its parent where names repeat."""
    names = [run.path.name or str(run.path) for run in runs]
    return [
        f"{run.path.parent.name}/{name}" if names.count(name) > 1 else name
        for run, name in zip(runs, names, strict=True)
    ]


def constraint_text(constraint: Constraint, objectives: Sequence[Objective]) -> str:
    """``latency<=3ms``: a stored constraint (bound in the metric's unit) written as a user would."""
    units = {o.name: o.unit for o in objectives}
    unit = units.get(
        constraint.metric, BUILTIN_OBJECTIVES.get(constraint.metric, Objective("", "min")).unit
    )
    return f"{constraint.metric}{constraint.op}{constraint.bound:g}{'ms' if unit == 'ms' else ''}"


def hypervolume_note(views: Sequence[RunView]) -> str:
    """How the hypervolume curves were normalised, in one sentence for the page."""
    if any(v.hv_shared for v in views):
        return (
            "Hypervolume of the feasible front after each evaluation, normalised by the range of "
            "feasible values across all runs with the same objectives, so their curves compare."
        )
    return "Hypervolume of the feasible front after each evaluation, normalised by the range of this run's feasible values."


def describe_value(value: Any) -> str:
    """A meta value in one line: scalars as they are, small lists joined, mappings as ``k=v``."""
    if isinstance(value, Mapping):
        return ", ".join(
            f"{k}={describe_value(v)}" for k, v in value.items() if v not in (None, "", [], {})
        )
    if isinstance(value, (list, tuple)):
        return ", ".join(describe_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
