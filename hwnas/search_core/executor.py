"""Executors: where a batch of independent tasks runs (this process, a process pool; Ray later).

An executor only runs functions and reports which task finished; what a task
is (evaluating one subnet) is :mod:`hwnas.search_core.evaluator`'s business.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hwnas.errors import ConfigError


@dataclass(frozen=True)
class TaskResult:
    """One finished task: its index in the submitted batch, its return value, or why it was lost.

    ``error`` is set only when the executor itself lost the task (a worker
    process died); exceptions raised by the function propagate as usual.
    """

    index: int
    value: Any = None
    error: str | None = None


class Executor(ABC):
    """Runs ``fn`` over a batch of items and yields results as they complete.

    Subclasses implement :meth:`map_unordered`; :meth:`close` releases workers.
    Executors are context managers.
    """

    name: ClassVar[str]

    @property
    def workers(self) -> int:
        """How many tasks run at once; the search loop sizes batches by it."""
        return 1

    @abstractmethod
    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[TaskResult]:
        """Call ``fn(item)`` for every item; yield one :class:`TaskResult` per item, in completion order."""

    def close(self) -> None:  # noqa: B027 - executors without workers have nothing to release
        """Release workers; the executor is not used afterwards."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class InProcessExecutor(Executor):
    """Runs tasks one after another in this process: simplest, and what a debugger wants."""

    name = "inprocess"

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[TaskResult]:
        for index, item in enumerate(items):
            yield TaskResult(index, fn(item))


def _call_pickled(payload: bytes, item: Any) -> Any:
    import cloudpickle

    return cloudpickle.loads(payload)(item)


class ProcessPoolExecutor(Executor):
    """Runs tasks in worker processes; a worker that dies loses its task, not the batch.

    The function is shipped with cloudpickle, so closures and lambdas work.
    ``start_method`` defaults to ``spawn``: forking a process that holds threads
    (torch, TVM) is unsafe.
    """

    name = "process"

    def __init__(self, workers: int = 2, *, start_method: str = "spawn") -> None:
        if workers < 1:
            raise ConfigError(f"process executor needs at least one worker, got {workers}")
        self._workers = workers
        self._start_method = start_method
        self._pool: Any = None

    @property
    def workers(self) -> int:
        return self._workers

    def _ensure_pool(self) -> Any:
        if self._pool is None:
            import concurrent.futures
            import multiprocessing

            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=multiprocessing.get_context(self._start_method),
            )
        return self._pool

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[TaskResult]:
        import cloudpickle

        payload = cloudpickle.dumps(fn)
        lost: list[int] = []
        yield from self._run(payload, items, range(len(items)), lost)
        # A dying worker breaks the whole pool and every task in flight fails with
        # it; rerun those one at a time so that only a task that kills its worker is lost.
        for index in sorted(lost):
            lost_again: list[int] = []
            yield from self._run(payload, items, [index], lost_again)
            if lost_again:
                yield TaskResult(index, error="worker process died while running this task")

    def _run(
        self, payload: bytes, items: Sequence[Any], indices: Iterable[int], lost: list[int]
    ) -> Iterator[TaskResult]:
        import concurrent.futures
        from concurrent.futures.process import BrokenProcessPool

        pool = self._ensure_pool()
        futures = {pool.submit(_call_pickled, payload, items[i]): i for i in indices}
        try:
            for future in concurrent.futures.as_completed(futures):
                try:
                    value = future.result()
                except BrokenProcessPool:
                    lost.append(futures[future])
                    continue
                yield TaskResult(futures[future], value)
        finally:
            for future in futures:
                future.cancel()
            if lost:
                pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_executor(spec: str | Executor | None) -> Executor:
    """``None`` / ``"inprocess"`` -> in this process; ``"process"`` or ``"process:N"`` -> N worker processes."""
    if spec is None:
        return InProcessExecutor()
    if isinstance(spec, Executor):
        return spec
    match = re.fullmatch(r"\s*(inprocess|process)(?::(\d+))?\s*", spec)
    if match is None:
        raise ConfigError(
            f"unknown executor {spec!r}",
            hint="use 'inprocess', 'process' or 'process:N' (N worker processes)",
        )
    if match[1] == "inprocess":
        if match[2]:
            raise ConfigError(f"executor {spec!r}: 'inprocess' takes no worker count")
        return InProcessExecutor()
    return ProcessPoolExecutor(int(match[2]) if match[2] else 2)
