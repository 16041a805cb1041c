"""Executors: where a batch of independent tasks runs (this process, a pool of pinned processes, Ray).

An executor only runs functions and reports which task finished; what a task
is (evaluating one subnet) is :mod:`hwnas.search_core.evaluator`'s business.
Workers keep the function they were sent between tasks (its caches, its
measurement worker, its loaded runtime), so a batch pays start-up once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hwnas.errors import ConfigError
from hwnas.measurement.timing import THREAD_ENV_VARS
from hwnas.measurement.timing_lock import usable_core_ids


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

    def describe(self) -> dict[str, Any]:
        """Where tasks run, for the run's metadata (which cores compile and time)."""
        return {"executor": self.name, "workers": self.workers}

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


#: Functions a worker process was sent, by payload digest: kept so that what they hold
#: (IR caches, a warm measurement worker, an accuracy cache) lives across tasks.
_FUNCTIONS: OrderedDict[str, Callable[[Any], Any]] = OrderedDict()
_FUNCTIONS_KEPT = 2


def call_pickled(payload: bytes, item: Any) -> Any:
    """Run a cloudpickled function on ``item``, unpickling it only the first time this process sees it."""
    import hashlib

    import cloudpickle

    digest = hashlib.sha256(payload).hexdigest()
    fn = _FUNCTIONS.get(digest)
    if fn is None:
        fn = _FUNCTIONS[digest] = cloudpickle.loads(payload)
        while len(_FUNCTIONS) > _FUNCTIONS_KEPT:
            _FUNCTIONS.popitem(last=False)
    return fn(item)


def pin_to_core(cores: Any) -> None:
    """Worker initialiser: take one core from the shared queue and run (and time) only there."""
    import os

    core = cores.get()
    os.sched_setaffinity(0, {core})
    # A worker owns one core: its runtimes and torch use one thread there.
    os.environ.update({name: "1" for name in THREAD_ENV_VARS})
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass


class ProcessPoolExecutor(Executor):
    """Runs tasks in worker processes; a worker that dies loses its task, not the batch.

    The function is shipped with cloudpickle, so closures and lambdas work.
    ``start_method`` defaults to ``spawn``: forking a process that holds threads
    (torch, TVM) is unsafe. With ``pin=True`` (and at least as many usable
    cores as workers) each worker runs on a core of its own with one thread,
    so workers compile and time side by side without disturbing each other.
    """

    name = "process"

    def __init__(self, workers: int = 2, *, start_method: str = "spawn", pin: bool = True) -> None:
        if workers < 1:
            raise ConfigError(f"process executor needs at least one worker, got {workers}")
        self._workers = workers
        self._start_method = start_method
        cores = list(usable_core_ids())
        self._cores = cores[:workers] if pin and len(cores) >= workers else []
        self._pool: Any = None

    @property
    def workers(self) -> int:
        return self._workers

    def describe(self) -> dict[str, Any]:
        if self._cores:
            layout = "each worker compiles, times and scores on its own core, one thread"
        else:
            layout = "workers share every usable core (fewer cores than workers: not pinned)"
        return {**super().describe(), "worker_cores": list(self._cores), "layout": layout}

    def _ensure_pool(self) -> Any:
        if self._pool is None:
            import concurrent.futures
            import multiprocessing

            context = multiprocessing.get_context(self._start_method)
            initializer, initargs = None, ()
            if self._cores:
                queue = context.Queue()
                for core in self._cores:
                    queue.put(core)
                initializer, initargs = pin_to_core, (queue,)
            self._pool = concurrent.futures.ProcessPoolExecutor(
                max_workers=self._workers,
                mp_context=context,
                initializer=initializer,
                initargs=initargs,
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
        futures = {pool.submit(call_pickled, payload, items[i]): i for i in indices}
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
