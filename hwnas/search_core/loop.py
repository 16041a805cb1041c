"""The ask / evaluate / store / tell loop that drives a strategy to its evaluation budget.

It owns the run-wide rules: nothing measured twice, every evaluation committed
before the next ask, state saved after every tell. Building its parts is :mod:`hwnas.search_core.api`'s job.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from hwnas import registry
from hwnas.errors import HwnasError, StrategyError
from hwnas.search_core.evaluator import Evaluation, Evaluator
from hwnas.search_core.executor import Executor
from hwnas.search_core.objectives import hypervolume, normalisation_bounds, pareto_mask
from hwnas.search_core.run_store import RunStore
from hwnas.search_core.strategy import Strategy

# Consecutive asks that bring nothing new before the loop concludes the strategy is exhausted.
MAX_IDLE_ASKS = 20


@dataclass(frozen=True)
class SearchProgress:
    """A snapshot after each batch: for progress bars and logs."""

    evaluations: int
    budget: int
    failed: int
    hypervolume: float
    best: dict[str, float] = field(hash=False)
    elapsed_s: float
    batch: tuple[Evaluation, ...] = ()


ProgressCallback = Callable[[SearchProgress], None]


class SearchLoop:
    """Runs ``strategy`` until ``budget`` real evaluations are in ``store`` (or nothing new can be proposed).

    Subnets the store already holds are not measured again: their stored
    evaluation is told instead, so a resumed run continues without repeats.
    """

    def __init__(
        self,
        strategy: Strategy,
        evaluator: Evaluator,
        store: RunStore,
        executor: Executor,
        *,
        budget: int,
        batch_size: int,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.strategy = strategy
        self.evaluator = evaluator
        self.store = store
        self.executor = executor
        self.budget = budget
        self.batch_size = batch_size
        self.progress = progress
        self.stopped_reason = ""
        self.tells = 0

    def run(self, measured: list[Evaluation]) -> list[Evaluation]:
        """Continue from ``measured`` (the store's evaluations, in order); returns all of them at the end."""
        by_key = {e.key: e for e in measured}
        start = time.perf_counter()
        idle = 0
        while len(measured) < self.budget:
            with self._strategy_call("ask"):
                proposals = self.strategy.ask(min(self.batch_size, self.budget - len(measured)))
            if not proposals:
                self.stopped_reason = (
                    f"strategy {self.strategy.name!r} has no new subnet to propose"
                )
                break
            fresh = [p for p in proposals if p.key not in by_key]
            batch: list[Evaluation] = []
            for evaluation in self.evaluator.evaluate(fresh, self.executor):
                self.store.add(evaluation)
                by_key[evaluation.key] = evaluation
                measured.append(evaluation)
                batch.append(evaluation)
            self.store.checkpoint()
            with self._strategy_call("tell"):
                self.strategy.tell([by_key[p.key] for p in proposals])
                state = self.strategy.state_dict()
            self.tells += 1
            self.store.save_state(state, self.tells, owner=f"strategy {self.strategy.name!r}")
            idle = 0 if fresh else idle + 1
            if idle >= MAX_IDLE_ASKS:
                self.stopped_reason = f"strategy {self.strategy.name!r} proposed only measured subnets {MAX_IDLE_ASKS} times in a row"
                break
            if self.progress is not None:
                self.progress(self.snapshot(measured, batch, time.perf_counter() - start))
        return measured

    @contextlib.contextmanager
    def _strategy_call(self, what: str) -> Iterator[None]:
        """Turn an exception from the strategy plugin into a :class:`StrategyError` naming it."""
        try:
            yield
        except HwnasError:
            raise
        except Exception as exc:
            name = self.strategy.name
            plugin = registry.plugin_of("strategy", name) or type(self.strategy).__module__
            lines = str(exc).strip().splitlines()
            raise StrategyError(
                plugin,
                f"strategy {name!r} failed in {what}(): {type(exc).__name__}"
                + (f": {lines[0]}" if lines else ""),
                hint="every evaluation so far is stored; fix or replace the strategy, then --resume",
            ) from exc

    def snapshot(
        self, measured: list[Evaluation], batch: list[Evaluation], elapsed: float
    ) -> SearchProgress:
        objectives = self.strategy.objectives
        feasible = [e for e in measured if e.feasible]
        F = np.array([e.minimised(objectives) for e in feasible]).reshape(
            len(feasible), len(objectives)
        )
        lower, upper = normalisation_bounds(objectives, F)
        best = {
            o.name: o.minimised(float(np.min(F[:, j]))) if len(F) else float("nan")
            for j, o in enumerate(objectives)
        }
        return SearchProgress(
            evaluations=len(measured),
            budget=self.budget,
            failed=sum(not e.ok for e in measured),
            hypervolume=hypervolume(F[pareto_mask(F)], lower, upper) if len(F) else 0.0,
            best=best,
            elapsed_s=elapsed,
            batch=tuple(batch),
        )
