"""The ``linas`` strategy: predictor-guided search (LINAS, as in Intel's DyNAS-T), cheaper and stricter.

Each round fits one predictor per metric on everything measured (features: the
genes, shared-choice counts and any free statistics), scores every candidate (or
runs an inner NSGA-II on the predictors when there are too many), and proposes a
diverse batch of never-measured subnets by greedy predicted hypervolume gain.
With free statistics the first batch is chosen on the front they predict.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import hwnas
from hwnas import (
    ConfigError,
    Evaluation,
    Strategy,
    StrategySettings,
    Subnet,
    constrained_ranks,
)
from hwnas_plugins.strategies.batch_choice import (
    diverse_greedy_gain,
    fill_diverse,
    gain_box,
    rank_order,
)
from hwnas_plugins.strategies.encoding import EncodingTools, row_key
from hwnas_plugins.strategies.linas_models import (
    FEATURE_SETS,
    Blocks,
    FittedMetric,
    MetricModel,
    statistic_features,
)


@dataclass(frozen=True)
class LinasSettings(StrategySettings):
    """``initial_samples`` evaluations before the first fit: random, or with free statistics
    chosen on the front they predict; ``predictor`` for every metric (``auto``: per metric the
    pair of predictor and target scale with the smallest cross-validated error among
    ``auto_predictors``), ``predictor_for`` per-metric overrides (e.g. ``latency=gbdt``);
    ``feature_sets`` the predictors may be fitted on (chosen per metric with the predictor: ``prior``,
    the statistic that grows with the metric; ``statistics``; ``genes+statistics``; ``genes``);
    ``use_statistics``: use free statistics when the search has them; ``portfolio``: the batch is
    shared among this many models per metric (the best by held-out error, the second best, ...),
    each picking on its own predictions, so one model's blind spot does not decide a whole batch;
    ``costly_shortlist``: with statistics that are not cheap (IR built per subnet, zero-cost
    proxies), models without them shortlist this many times the batch, and only the shortlist's
    statistics are computed; ``min_distance``: genes in
    which the picks of one batch must differ (when enough candidates allow); ``inner_population``
    and ``inner_generations`` size the inner NSGA-II on the predictors; ``exhaustive_limit``: score
    every candidate instead when there are at most this many; ``random_fraction`` of each batch
    is drawn at random to keep the predictors honest."""

    initial_samples: int = 10
    predictor: str = "auto"
    auto_predictors: tuple[str, ...] = ("ridge",)
    predictor_for: tuple[tuple[str, str], ...] = ()
    feature_sets: tuple[str, ...] = tuple(FEATURE_SETS)
    use_statistics: bool = True
    portfolio: int = 3
    costly_shortlist: int = 4
    min_distance: int = 2
    inner_population: int = 50
    inner_generations: int = 30
    exhaustive_limit: int = 20000
    random_fraction: float = 0.0


class LinasStrategy(Strategy):
    """Lightweight Iterative NAS (Cummings et al. 2022), improved on these points.

    - Nothing is measured twice: proposals exclude every subnet already measured
      or pending, by canonical key, across the whole run (and a resume).
    - The front a search returns is made of measured points only; predictions
      only choose what to measure.
    - Predictors see what a cost is additive in (counts of shared choices) and
      free statistics (IR counts, LUT sums, zero-cost proxies) of every
      candidate; which model and which target scale is chosen by held-out error.
    - A candidate predicted beyond the measured front keeps its predicted gain
      (the hypervolume box takes in the predictions), and one batch does not
      spend itself on near-copies of one predicted optimum.
    - Fits are cheap (closed-form ridge, a small linear programme), so a round
      on 15,625 candidates costs a fraction of a second.
    """

    name = "linas"
    description = (
        "predictor-guided: fit predictors, score candidates on them, measure a diverse best batch"
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
            or s.min_distance < 0
            or s.portfolio < 1
        ):
            raise ConfigError(
                "linas: need initial_samples >= 2, inner_population >= 4, inner_generations >= 1, "
                f"0 <= random_fraction <= 1, min_distance >= 0, portfolio >= 1; got {s}"
            )
        self.tools = EncodingTools(self.space)
        self.metrics = tuple(
            dict.fromkeys([o.name for o in self.objectives] + [c.metric for c in self.constraints])
        )
        overrides = dict(s.predictor_for)
        unknown = set(overrides) - set(self.metrics)
        if unknown:
            raise ConfigError(
                f"linas: predictor_for names metrics the search does not use: {sorted(unknown)}"
            )
        self._use_statistics = s.use_statistics and self.statistics is not None
        self._priors: dict[str, int] = {}
        if self._use_statistics:
            assert self.statistics is not None
            for metric in self.metrics:
                prior = self.statistics.prior(metric)
                if prior is not None:
                    self._priors[metric] = self.statistics.names.index(prior)
        self._costly = self._use_statistics and not getattr(self.statistics, "cheap", True)
        self._models: dict[bool, dict[str, MetricModel]] = {True: {}, False: {}}
        for metric in self.metrics:
            name = overrides.get(metric, s.predictor)
            predictors = s.auto_predictors if name == "auto" else (name,)
            self._models[True][metric] = MetricModel(metric, predictors, s.feature_sets)
            self._models[False][metric] = MetricModel(metric, predictors, ("genes",))
        self._grid: np.ndarray | None = None
        if self.pool is not None and len(self.pool) <= s.exhaustive_limit:
            self._grid = self.pool.encoded
        elif self.pool is None:
            self._grid = self.tools.enumerate(s.exhaustive_limit)
        self._stats_cache: dict[bytes, np.ndarray] = {}
        self._grid_blocks: dict[bool, dict[str, Blocks]] = {}
        self._grid_index: dict[bytes, int] | None = None
        self.last_round_seconds = 0.0

    def _ask(self, n: int) -> Sequence[Subnet]:
        s: LinasSettings = self.settings  # type: ignore[assignment]
        measured = [e for e in self.history if e.ok]
        start = time.perf_counter()
        n_random = int(round(n * s.random_fraction))
        if len(self.history) < s.initial_samples or len(measured) < 2:
            chosen = self._first_batch(n) if self._use_statistics else []
        else:
            chosen = self._portfolio_batch(measured, n - n_random)
        proposals = [self.space.decode(row) for row in chosen]
        proposals += self.random_subnets(n - len(proposals), exclude={p.key for p in proposals})
        self.last_round_seconds = time.perf_counter() - start
        return proposals

    # -- features and predictors ----------------------------------------------------

    def _blocks(self, X: np.ndarray, statistics: bool = True) -> dict[str, Blocks]:
        """Per metric, the feature blocks of encoded rows (the grid's are computed once)."""
        if X is self._grid and X is not None:
            if statistics not in self._grid_blocks:
                self._grid_blocks[statistics] = self._compute_blocks(X, statistics)
            return self._grid_blocks[statistics]
        return self._compute_blocks(X, statistics)

    def _compute_blocks(self, X: np.ndarray, statistics: bool) -> dict[str, Blocks]:
        common = {"genes": self.tools.features(X)}
        if not (statistics and self._use_statistics):
            return {m: common for m in self.metrics}
        assert self.statistics is not None
        # the grid's blocks are kept whole, so its statistics need no per-row cache
        stats = (
            self.statistics.compute_encoded(self.space, X)
            if X is self._grid
            else self._statistics(X)
        )
        common["statistics"] = statistic_features(stats)
        return {
            m: common | {"prior": statistic_features(stats[:, [self._priors[m]]])}
            if m in self._priors
            else common
            for m in self.metrics
        }

    def _statistics(self, X: np.ndarray) -> np.ndarray:
        """Free statistics of encoded rows, each row computed once per run."""
        assert self.statistics is not None
        missing = list(
            {row_key(row): row for row in X if row_key(row) not in self._stats_cache}.values()
        )
        if missing:
            values = self.statistics.compute_encoded(self.space, np.stack(missing))
            for row, v in zip(missing, values, strict=True):
                self._stats_cache[row_key(row)] = v
        return np.stack([self._stats_cache[row_key(row)] for row in X]).reshape(
            len(X), len(self.statistics.names)
        )

    def _fit(
        self, measured: list[Evaluation], rank: int = 0, statistics: bool = True
    ) -> dict[str, FittedMetric]:
        blocks = self._blocks(np.stack([self.space.encode(e.subnet) for e in measured]), statistics)
        return {
            metric: model.fit(
                blocks[metric], np.array([e.values[metric] for e in measured]), rank=rank
            )
            for metric, model in self._models[statistics].items()
        }

    def _portfolio_batch(self, measured: list[Evaluation], n: int) -> list[np.ndarray]:
        """Shares of the batch chosen on the predictions of the best, second best, ... models."""
        s: LinasSettings = self.settings  # type: ignore[assignment]
        shortlist: np.ndarray | None = None
        if self._costly:
            # statistics cost real time per subnet: compute them only for a shortlist
            plain = self._fit(measured, statistics=False)
            X, F, G = self._candidates(plain, measured, statistics=False)
            picks = self._best_unknown(X, F, G, s.costly_shortlist * n)
            shortlist = np.stack(picks) if picks else None
        chosen: list[np.ndarray] = []
        seen: set[tuple] = set()
        for rank in range(s.portfolio):
            predictors = self._fit(measured, rank)
            signature = tuple(
                m.ranking[min(rank, len(m.ranking) - 1)].feature_set
                for m in self._models[True].values()
            )
            if signature in seen:
                continue
            seen.add(signature)
            share = -(-(n - len(chosen)) // (s.portfolio - rank))
            X, F, G = self._scored(predictors, measured, shortlist)
            if shortlist is None and self._grid is None:
                # one inner search (on the best models) is enough: the others score its archive
                shortlist = X
            chosen += self._best_unknown(X, F, G, share, also_avoid=chosen)
        if len(chosen) < n:
            X, F, G = self._scored(self._fit(measured), measured, shortlist)
            chosen += self._best_unknown(X, F, G, n - len(chosen), also_avoid=chosen)
        return chosen[:n]

    def _scored(
        self,
        predictors: dict[str, FittedMetric],
        measured: list[Evaluation],
        shortlist: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if shortlist is None:
            return self._candidates(predictors, measured)
        F, G = self._predict(predictors, shortlist)
        return shortlist, F, G

    def _predict(
        self, predictors: dict[str, FittedMetric], X: np.ndarray, statistics: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        blocks = self._blocks(X, statistics)
        values = {m: p.predict(blocks[m]) for m, p in predictors.items()}
        F = np.column_stack([o.minimised(values[o.name]) for o in self.objectives])
        G = (
            np.column_stack([[c.slack(v) for v in values[c.metric]] for c in self.constraints])
            if self.constraints
            else np.zeros((len(X), 0))
        )
        return F, G

    # -- the first batch, before anything is measured ----------------------------------

    def _first_batch(self, n: int) -> list[np.ndarray]:
        """The front that free statistics predict (each objective by the statistic that grows
        with it), spread by greedy hypervolume gain; empty when an objective has no such statistic."""
        if any(o.name not in self._priors for o in self.objectives):
            return []
        s: LinasSettings = self.settings  # type: ignore[assignment]
        if self._costly:
            X = self._random_rows(s.costly_shortlist * n)
        else:
            X = self._grid if self._grid is not None else self._random_rows(self._inner_budget())
        X = X[self._fresh_mask(X)]
        if len(X) == 0:
            return []
        stats = self._statistics(X)
        F = np.column_stack([o.minimised(stats[:, self._priors[o.name]]) for o in self.objectives])
        lower, upper = F.min(axis=0), F.max(axis=0)
        box = (lower, np.where(upper > lower, upper, lower + 1.0) + 1e-9)
        size = max(8 * n, 128)
        order = rank_order(F, np.zeros(len(F)), size + 4 * n)
        shortlist = order[:size]
        chosen = diverse_greedy_gain(
            F, shortlist, n, np.zeros((0, F.shape[1])), box, X, s.min_distance
        )
        chosen = fill_diverse(order, chosen, n, X, s.min_distance)
        return [X[i] for i in chosen]

    # -- inner search ------------------------------------------------------------

    def _inner_budget(self) -> int:
        s: LinasSettings = self.settings  # type: ignore[assignment]
        return s.inner_population * s.inner_generations

    def _random_rows(self, count: int) -> np.ndarray:
        return np.stack([self.space.encode(r) for r in self.random_subnets(count)])

    def _candidates(
        self,
        predictors: dict[str, FittedMetric],
        measured: list[Evaluation],
        statistics: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Predicted (X, F, G) of the candidates worth ranking: every one, or an inner NSGA-II's archive."""
        if self._grid is not None:
            F, G = self._predict(predictors, self._grid, statistics)
            return self._grid, F, G
        return self._inner_nsga2(predictors, measured, statistics)

    def _inner_nsga2(
        self, predictors: dict[str, FittedMetric], measured: list[Evaluation], statistics: bool
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
            F, G = self._predict(predictors, X, statistics)
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

    # -- choosing the batch ------------------------------------------------------------

    def _fresh_mask(self, X: np.ndarray, also_avoid: Sequence[np.ndarray] = ()) -> np.ndarray:
        """Rows never measured nor pending (nor in ``also_avoid``)."""
        known = {row_key(self.space.encode(e.subnet)) for e in self.history}
        known |= {row_key(self.space.encode(p)) for p in self._pending.values()}
        known |= {row_key(row) for row in also_avoid}
        if X is self._grid and X is not None:
            # the grid is scored every round: look its few known rows up instead of keying all
            if self._grid_index is None:
                self._grid_index = {row_key(row): i for i, row in enumerate(X)}
            mask = np.ones(len(X), dtype=bool)
            mask[[self._grid_index[k] for k in known if k in self._grid_index]] = False
            return mask
        return np.array([row_key(row) not in known for row in X], dtype=bool)

    def _best_unknown(
        self,
        X: np.ndarray,
        F: np.ndarray,
        G: np.ndarray,
        n: int,
        also_avoid: Sequence[np.ndarray] = (),
    ) -> list[np.ndarray]:
        """Up to ``n`` rows never measured nor pending nor in ``also_avoid``: greedy predicted
        hypervolume gain over the measured front, diverse (picks in ``also_avoid`` count as picks
        for the distance rule); once nothing is predicted to gain, by predicted rank and crowding."""
        if n <= 0:
            return []
        fresh = self._fresh_mask(X, also_avoid)
        X, F, G = X[fresh], F[fresh], G[fresh]
        if len(X) == 0:
            return []
        s: LinasSettings = self.settings  # type: ignore[assignment]
        violation = np.maximum(G, 0).sum(axis=1) if G.shape[1] else np.zeros(len(X))
        size = max(8 * n, 128)
        order = rank_order(F, violation, size + 4 * n)
        shortlist = [i for i in order[:size] if violation[i] <= 0]
        front = self.objective_matrix([e for e in self.history if e.feasible])
        box = gain_box(self.objectives, front, F[shortlist] if shortlist else F)
        # earlier picks of this batch join the candidates so the distance rule sees them
        genes = np.vstack([X, *also_avoid]) if len(also_avoid) else X
        earlier = list(range(len(X), len(genes)))
        chosen = diverse_greedy_gain(
            F, shortlist, n, front, box, genes, s.min_distance, earlier=earlier
        )
        chosen = fill_diverse(order, chosen, n, genes, s.min_distance, earlier=earlier)
        return [X[i] for i in chosen]


@hwnas.hookimpl
def hwnas_register_strategies(register: Any) -> None:
    register(LinasStrategy)
