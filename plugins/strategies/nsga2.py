"""The ``nsga2`` strategy: pymoo's NSGA-II driven ask/tell over the integer encoding, with constraints.

Constraints and failed evaluations reach NSGA-II as inequality constraints, so
constrained domination steers the search while it runs, not only at the end.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import hwnas
from hwnas import Evaluation, Strategy, StrategySettings, Subnet
from hwnas_plugins.strategies.encoding import EncodingTools, row_key

# Saved population attributes: with rank and crowding restored as they were,
# a resumed run's tournaments pick exactly what the original run would have.
_POP_FIELDS = ("X", "F", "G", "CV", "rank", "crowding")


@dataclass(frozen=True)
class NSGA2Settings(StrategySettings):
    """``population_size`` survivors per generation; ``offspring`` children per generation (0: same);
    ``crossover_prob`` uniform crossover probability; ``mutation_genes`` expected genes reset per child."""

    population_size: int = 40
    offspring: int = 0
    crossover_prob: float = 0.9
    mutation_genes: float = 1.0


class NSGA2Strategy(Strategy):
    """NSGA-II (Deb et al. 2002) via pymoo's ask/tell, decoupled from the loop's batch size.

    A pymoo generation is handed out over as many ``ask`` calls as the batch size
    needs; once all of it is told, it is passed to pymoo's ``tell`` and the next
    generation is asked. Offspring equal to anything already measured are
    rejected by duplicate elimination, so the budget goes to new subnets.
    """

    name = "nsga2"
    description = "NSGA-II (pymoo ask/tell) over the integer encoding, constrained domination"
    settings_class = NSGA2Settings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings: NSGA2Settings = self.settings  # type: ignore[assignment]
        if settings.population_size < 2:
            from hwnas import ConfigError

            raise ConfigError(
                f"nsga2: population_size must be at least 2, got {settings.population_size}"
            )
        self.tools = EncodingTools(self.space)
        self._rows: dict[str, bytes] = {}
        self._algorithm = self._new_algorithm()
        self._batch: np.ndarray | None = None  # the pymoo generation being handed out
        self._queue: list[int] = []  # batch rows not yet asked
        self._results: dict[bytes, tuple[list[float], list[float]]] = {}

    # -- pymoo plumbing -----------------------------------------------------------

    def _new_algorithm(self) -> Any:
        from pymoo.algorithms.moo.nsga2 import NSGA2
        from pymoo.core.termination import NoTermination
        from pymoo.operators.crossover.ux import UX

        from hwnas_plugins.strategies.pymoo_bridge import (
            CallbackRepair,
            CallbackSampling,
            EncodedProblem,
            KnownRowElimination,
            RandomResetMutation,
        )

        s: NSGA2Settings = self.settings  # type: ignore[assignment]
        algorithm = NSGA2(
            pop_size=s.population_size,
            n_offsprings=s.offspring or s.population_size,
            sampling=CallbackSampling(self._sample_rows),
            crossover=UX(prob=s.crossover_prob),
            mutation=RandomResetMutation(s.mutation_genes),
            repair=CallbackRepair(self._admissible_rows),
            eliminate_duplicates=KnownRowElimination(self._known_rows),
        )
        self._problem = EncodedProblem(
            self.space.upper_bounds, len(self.objectives), len(self.constraints) + 1
        )
        algorithm.setup(self._problem, termination=NoTermination(), seed=self.seed, verbose=False)
        return algorithm

    def _row(self, subnet: Subnet) -> bytes:
        if subnet.key not in self._rows:
            self._rows[subnet.key] = row_key(self.space.encode(subnet))
        return self._rows[subnet.key]

    def _known_rows(self) -> set[bytes]:
        return {self._row(e.subnet) for e in self.history} | {
            self._row(s) for s in self._pending.values()
        }

    def _sample_rows(self, n: int) -> np.ndarray:
        return np.stack([self.space.encode(s) for s in self.random_subnets(n)])

    def _admissible_rows(self, X: np.ndarray) -> np.ndarray:
        if self.pool is None:
            return self.tools.canonical(X)
        return self.pool.encoded[
            self.pool.nearest(self.tools.canonical(X), self.known_keys, self.rng)
        ]

    # -- ask / tell -----------------------------------------------------------------

    def _ask(self, n: int) -> Sequence[Subnet]:
        if not self._queue:
            if self._batch is not None:
                self._advance()
            self._next_batch()
        if self._batch is None:
            return []
        chosen, self._queue = self._queue[:n], self._queue[n:]
        return [self.space.decode(self._batch[i]) for i in chosen]

    def _next_batch(self) -> None:
        pop = self._algorithm.ask()
        if pop is None:
            # pymoo found no offspring that is not a duplicate; it flags termination, which
            # a budget-driven search overrides: random newcomers follow below.
            self._algorithm.termination.force_termination = False
        X = (
            np.zeros((0, self.tools.upper.size), dtype=int)
            if pop is None
            else np.asarray(pop.get("X"), dtype=int)
        )
        X = X.reshape(-1, self.tools.upper.size)
        told = {self._row(e.subnet): e for e in self.history}
        # Rows measured before (possible after a pool projection) need no new measurement.
        for row in X:
            if row_key(row) in told:
                self._record(row_key(row), told[row_key(row)])
        fresh = [i for i, row in enumerate(X) if row_key(row) not in told]
        if not fresh:
            extra = self.random_subnets(max(1, len(X) // 4, self.settings.population_size // 4))  # type: ignore[attr-defined]
            if extra:
                X = np.vstack([X, np.stack([self.space.encode(s) for s in extra])])
                fresh = list(range(len(X) - len(extra), len(X)))
        if not fresh:
            self._batch, self._queue, self._results = None, [], {}  # the space is exhausted
            return
        self._batch, self._queue = X, fresh

    def _record(self, row: bytes, evaluation: Evaluation) -> None:
        F = self.objective_matrix([evaluation])[0]
        G = self.constraint_slacks([evaluation])[0]
        if not evaluation.ok:
            F = np.zeros(
                len(self.objectives)
            )  # any finite value: constrained domination ranks it by G
        self._results[row] = (F.tolist(), G.tolist())

    def _tell(self, evaluations: Sequence[Evaluation]) -> None:
        if self._batch is None:
            return
        in_batch = {row_key(row) for row in self._batch}
        for evaluation in evaluations:
            row = self._row(evaluation.subnet)
            if row in in_batch:
                self._record(row, evaluation)

    def _advance(self) -> None:
        from pymoo.core.evaluator import Evaluator
        from pymoo.core.population import Population
        from pymoo.problems.static import StaticProblem

        assert self._batch is not None
        failed = ([0.0] * len(self.objectives), [1e6] * (len(self.constraints) + 1))
        results = [self._results.get(row_key(row), failed) for row in self._batch]
        F = np.array([r[0] for r in results], dtype=float)
        G = np.array([r[1] for r in results], dtype=float)
        pop = Population.new("X", self._batch)
        Evaluator().eval(StaticProblem(self._problem, F=F, G=G), pop)
        self._algorithm.tell(infills=pop)
        self._batch, self._queue, self._results = None, [], {}

    # -- resume -------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        algorithm = self._algorithm
        pop = algorithm.pop if algorithm.is_initialized else None
        return {
            "pop": None
            if pop is None
            else {f: np.asarray(pop.get(f)).tolist() for f in _POP_FIELDS},
            "n_iter": algorithm.n_iter,
            "pymoo_rng": algorithm.random_state.bit_generator.state,
            "batch": None if self._batch is None else self._batch.tolist(),
            "queue": list(self._queue),
            "results": {row.hex(): list(value) for row, value in self._results.items()},
        }

    def _load_state(self, own: Mapping[str, Any], evaluations: Mapping[str, Evaluation]) -> None:
        from pymoo.core.population import Population

        algorithm = self._algorithm = self._new_algorithm()
        if own["pop"] is not None:
            saved = own["pop"]
            pop = Population.new("X", np.array(saved["X"], dtype=int))
            for f in _POP_FIELDS[1:]:
                pop.set(f, np.array(saved[f]))
            algorithm.pop = pop
            algorithm.is_initialized = True
            algorithm.n_iter = own["n_iter"]
        algorithm.random_state.bit_generator.state = own["pymoo_rng"]
        self._batch = None if own["batch"] is None else np.array(own["batch"], dtype=int)
        self._queue = list(own["queue"])
        self._results = {bytes.fromhex(row): (v[0], v[1]) for row, v in own["results"].items()}


@hwnas.hookimpl
def hwnas_register_strategies(register: Any) -> None:
    register(NSGA2Strategy)
