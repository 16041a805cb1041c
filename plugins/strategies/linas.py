"""The ``linas`` strategy: predictor-guided search (LINAS, as in Intel's DyNAS-T), cheaper and stricter.

Each round fits one predictor per metric on everything measured, searches the
predictors with an inner NSGA-II (or scores every candidate when that is
cheaper), and proposes the best predicted subnets that were never measured.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import hwnas
from hwnas import (
    BUILTIN_OBJECTIVES,
    ConfigError,
    Evaluation,
    Predictor,
    Strategy,
    StrategySettings,
    Subnet,
    constrained_ranks,
    crowding_distance,
    hypervolume,
    normalisation_bounds,
)
from hwnas_plugins.strategies.encoding import EncodingTools, row_key

# units whose metrics are positive and multiplicative: predicted on a log scale
_LOG_UNITS = ("ms", "count", "bytes")


@dataclass(frozen=True)
class LinasSettings(StrategySettings):
    """``initial_samples`` random evaluations before the first fit; ``predictor`` for every metric,
    ``predictor_for`` per-metric overrides (e.g. ``latency=gbdt``); ``inner_population`` and
    ``inner_generations`` size the inner NSGA-II on the predictors; ``exhaustive_limit``: score
    every candidate instead when there are at most this many; ``random_fraction`` of each batch
    is drawn at random to keep the predictors honest."""

    initial_samples: int = 20
    predictor: str = "ridge"
    predictor_for: tuple[tuple[str, str], ...] = ()
    inner_population: int = 50
    inner_generations: int = 30
    exhaustive_limit: int = 20000
    random_fraction: float = 0.0


class LinasStrategy(Strategy):
    """Lightweight Iterative NAS (Cummings et al. 2022), improved on three points.

    - Nothing is measured twice: proposals exclude every subnet already measured
      or pending, by canonical key, across the whole run (and a resume).
    - The front a search returns is made of measured points only; predictions
      only choose what to measure.
    - Fits are cheap: closed-form ridge with leave-one-out by default, and an
      inner search on vectorised features, so a round costs well under a second.
    """

    name = "linas"
    description = (
        "predictor-guided: fit predictors, inner NSGA-II on them, measure the best new ones"
    )
    settings_class = LinasSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s: LinasSettings = self.settings  # type: ignore[assignment]
        if (
            s.initial_samples < 2
            or s.inner_population < 4
            or s.inner_generations < 1
            or not 0 <= s.random_fraction <= 1
        ):
            raise ConfigError(
                "linas: need initial_samples >= 2, inner_population >= 4, inner_generations >= 1, "
                f"0 <= random_fraction <= 1; got {s}"
            )
        self.tools = EncodingTools(self.space)
        self.metrics = tuple(
            dict.fromkeys([o.name for o in self.objectives] + [c.metric for c in self.constraints])
        )
        self._predictor_names = {m: dict(s.predictor_for).get(m, s.predictor) for m in self.metrics}
        unknown = set(dict(s.predictor_for)) - set(self.metrics)
        if unknown:
            raise ConfigError(
                f"linas: predictor_for names metrics the search does not use: {sorted(unknown)}"
            )
        from hwnas import predictor_class

        for metric, name in self._predictor_names.items():
            if predictor_class(name).input_kind != "vector":
                raise ConfigError(
                    f"linas: predictor {name!r} for {metric!r} needs {predictor_class(name).input_kind} inputs",
                    hint="LINAS predicts from search-space features; use ridge, svr, mlp or gbdt",
                )
        self._grid: np.ndarray | None = None
        if self.pool is not None and len(self.pool) <= s.exhaustive_limit:
            self._grid = self.pool.encoded
        elif self.pool is None:
            self._grid = self.tools.enumerate(s.exhaustive_limit)
        self.last_round_seconds = 0.0

    def _ask(self, n: int) -> Sequence[Subnet]:
        s: LinasSettings = self.settings  # type: ignore[assignment]
        measured = [e for e in self.history if e.ok]
        if len(self.history) < s.initial_samples or len(measured) < 2:
            return self.random_subnets(n)
        start = time.perf_counter()
        n_random = int(round(n * s.random_fraction))
        predictors = self._fit(measured)
        X, F, G = self._candidates(predictors, measured)
        chosen = self._best_unknown(X, F, G, n - n_random)
        proposals = [self.space.decode(row) for row in chosen]
        proposals += self.random_subnets(n - len(proposals), exclude={p.key for p in proposals})
        self.last_round_seconds = time.perf_counter() - start
        return proposals

    # -- predictors ---------------------------------------------------------------

    def _fit(self, measured: list[Evaluation]) -> dict[str, Predictor]:
        from hwnas import predictor_class

        features = self.space.features_matrix([e.subnet for e in measured])
        units = {name: o.unit for name, o in BUILTIN_OBJECTIVES.items()} | {
            o.name: o.unit for o in self.objectives
        }
        predictors = {}
        for metric in self.metrics:
            y = np.array([e.values[metric] for e in measured])
            log = units.get(metric, "") in _LOG_UNITS and bool(np.all(y > 0))
            predictors[metric] = (
                predictor_class(self._predictor_names[metric]).with_log_target(log).fit(features, y)
            )
        return predictors

    def _predict(
        self, predictors: dict[str, Predictor], X: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        features = self.tools.features(X)
        values = {m: p.predict(features) for m, p in predictors.items()}
        F = np.column_stack(
            [values[o.name] if o.direction == "min" else -values[o.name] for o in self.objectives]
        )
        G = (
            np.column_stack([[c.slack(v) for v in values[c.metric]] for c in self.constraints])
            if self.constraints
            else np.zeros((len(X), 0))
        )
        return F, G

    # -- inner search ------------------------------------------------------------

    def _candidates(
        self, predictors: dict[str, Predictor], measured: list[Evaluation]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted (X, F, G) of the candidates worth ranking: every one, or an inner NSGA-II's archive."""
        if self._grid is not None:
            F, G = self._predict(predictors, self._grid)
            return self._grid, F, G
        return self._inner_nsga2(predictors, measured)

    def _inner_nsga2(
        self, predictors: dict[str, Predictor], measured: list[Evaluation]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.termination import NoTermination
        from pymoo.operators.crossover.ux import UX

        from hwnas_plugins.strategies.pymoo_bridge import (
            CallbackRepair,
            EncodedProblem,
            KnownRowElimination,
            RandomResetMutation,
        )

        s: LinasSettings = self.settings  # type: ignore[assignment]
        archive: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

        def evaluate_batch(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            F, G = self._predict(predictors, X)
            archive.append((X.copy(), F, G))
            return F, G

        problem = EncodedProblem(
            self.space.upper_bounds, len(self.objectives), len(self.constraints), evaluate_batch
        )
        algorithm = NSGA2(
            pop_size=s.inner_population,
            sampling=self._seed_population(measured, s.inner_population),
            crossover=UX(),
            mutation=RandomResetMutation(1.0),
            repair=CallbackRepair(self._admissible_rows),
            eliminate_duplicates=KnownRowElimination(),
        )
        algorithm.setup(
            problem, termination=NoTermination(), seed=int(self.rng.integers(2**31)), verbose=False
        )
        for _ in range(s.inner_generations):
            algorithm.next()
        X = np.vstack([a[0] for a in archive])
        F = np.vstack([a[1] for a in archive])
        G = np.vstack([a[2] for a in archive]) if self.constraints else np.zeros((len(X), 0))
        _, first = np.unique(X, axis=0, return_index=True)
        return X[first], F[first], G[first]

    def _seed_population(self, measured: list[Evaluation], size: int) -> np.ndarray:
        """The measured constrained front (up to half the population), the rest random."""
        F = self.objective_matrix(measured)
        ranks = constrained_ranks(F, self.violations(measured))
        best = [measured[i].subnet for i in np.argsort(ranks, kind="stable")[: size // 2]]
        rows = [self.space.encode(b) for b in best]
        rows += [
            self.space.encode(r)
            for r in self.random_subnets(size - len(rows), exclude={b.key for b in best})
        ]
        while len(rows) < size:
            rows.append(self.space.encode(self.space.sample(self.rng)))
        return np.stack(rows)

    def _admissible_rows(self, X: np.ndarray) -> np.ndarray:
        if self.pool is None:
            return self.tools.canonical(X)
        # The inner search may revisit measured subnets (they anchor the front); only proposals exclude them.
        return self.pool.encoded[self.pool.nearest(self.tools.canonical(X), set(), self.rng)]

    def _best_unknown(
        self, X: np.ndarray, F: np.ndarray, G: np.ndarray, n: int
    ) -> list[np.ndarray]:
        """Up to ``n`` rows never measured nor pending, chosen greedily by predicted hypervolume gain.

        Each pick adds most predicted hypervolume to the measured front plus the
        picks before it; once no candidate is predicted to add any, the rest
        follow predicted constrained rank and crowding.
        """
        if n <= 0:
            return []
        known = {row_key(self.space.encode(e.subnet)) for e in self.history}
        known |= {row_key(self.space.encode(p)) for p in self._pending.values()}
        fresh = np.array([row_key(row) not in known for row in X], dtype=bool)
        X, F, G = X[fresh], F[fresh], G[fresh]
        if len(X) == 0:
            return []
        violation = np.maximum(G, 0).sum(axis=1) if G.shape[1] else np.zeros(len(X))
        order = self._rank_order(F, violation)
        shortlist = [i for i in order[: max(4 * n, 64)] if violation[i] <= 0]
        chosen = self._greedy_gain(F, shortlist, n)
        chosen += [i for i in order if i not in set(chosen)][: n - len(chosen)]
        return [X[i] for i in chosen]

    def _rank_order(self, F: np.ndarray, violation: np.ndarray) -> list[int]:
        """Indices by predicted constrained rank, then by crowding (most isolated first) within a rank."""
        ranks = constrained_ranks(F, violation)
        order: list[int] = []
        for rank in np.unique(ranks):
            members = np.flatnonzero(ranks == rank)
            crowding = crowding_distance(F[members])
            order.extend(members[np.argsort(-crowding, kind="stable")].tolist())
        return order

    def _greedy_gain(self, F: np.ndarray, shortlist: list[int], n: int) -> list[int]:
        """Greedy picks by predicted hypervolume gain, lazily: gains only shrink as picks are added
        (hypervolume is submodular), so a stale gain is an upper bound and most need no recomputing."""
        import heapq

        measured = [e for e in self.history if e.feasible]
        front = self.objective_matrix(measured)
        lower, upper = normalisation_bounds(self.objectives, front if len(front) else F[shortlist])
        current = hypervolume(front, lower, upper) if len(front) else 0.0

        def gain(i: int) -> float:
            return hypervolume(np.vstack([front, F[i : i + 1]]), lower, upper) - current

        heap = [(-gain(i), i) for i in shortlist]
        heapq.heapify(heap)
        chosen: list[int] = []
        while heap and len(chosen) < n:
            _, i = heapq.heappop(heap)
            fresh = gain(i)
            if fresh <= 1e-12:
                continue
            if heap and fresh < -heap[0][0]:
                heapq.heappush(heap, (-fresh, i))
                continue
            chosen.append(i)
            front = np.vstack([front, F[i : i + 1]])
            current += fresh
        return chosen


@hwnas.hookimpl
def hwnas_register_strategies(register: Any) -> None:
    register(LinasStrategy)
