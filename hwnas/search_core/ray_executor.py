"""The Ray executor: candidates evaluated by actors on a Ray cluster, results back to the driver.

The search loop (and its run store) stays in the driver; each actor keeps the
evaluation function it was sent, so its caches and measurement worker live
across tasks. A task whose actor dies is given to a fresh actor, up to
``retries`` times, so a killed worker or node loses only that attempt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from hwnas.errors import ConfigError
from hwnas.search_core.executor import Executor, TaskResult

#: How long ``ray.init`` may take to reach a cluster before we say it cannot be reached.
CONNECT_TIMEOUT_S = 60.0
_SPEC = re.compile(
    r"^ray(?::(?P<count>\d+)|://(?P<address>[^?]+))?(?:\?workers=(?P<workers>\d+))?$"
)


class RayExecutor(Executor):
    """Runs tasks on Ray actors, one CPU each: a local cluster (``address=None``) or ``ray://HOST:PORT``."""

    name = "ray"

    def __init__(self, workers: int | None = None, *, address: str | None = None, retries: int = 2):
        if workers is not None and workers < 1:
            raise ConfigError(f"ray executor needs at least one worker, got {workers}")
        self._requested = workers
        self.address = address
        self.retries = retries
        self._actors: list[Any] = []
        self._ray: Any = None
        self._connect()

    @classmethod
    def from_spec(cls, spec: str) -> RayExecutor:
        """``ray``, ``ray:N``, ``ray://HOST:PORT`` or ``ray://HOST:PORT?workers=N``."""
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise ConfigError(
                f"unknown executor {spec!r}",
                hint="use 'ray' (a local cluster), 'ray:N', or 'ray://HOST:PORT[?workers=N]'",
            )
        count = match["count"] or match["workers"]
        address = f"ray://{match['address']}" if match["address"] else None
        return cls(int(count) if count else None, address=address)

    # -- connection ---------------------------------------------------------------

    def _connect(self) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError(
                "the ray executor needs Ray", hint="pip install 'hwnas[ray]' (or 'ray[default]')"
            ) from None
        self._ray = ray
        if ray.is_initialized():
            return
        if self.address is not None:
            _check_reachable(self.address)
        try:
            options: dict[str, Any] = {
                "log_to_driver": False,
                "logging_level": "ERROR",
                # workers import hwnas from their own environment; ship only this switch
                "runtime_env": {"env_vars": {"HWNAS_DISABLE_PLUGIN_AUTOLOAD": _autoload_flag()}},
            }
            if self.address is None:  # a new local cluster (Ray Client refuses these options)
                options.update(include_dashboard=False, configure_logging=False)
            ray.init(address=self.address, **options)
        except Exception as exc:  # ConnectionError, TimeoutError, RuntimeError from Ray
            raise ConfigError(
                f"cannot reach the Ray cluster at {self.address or 'a new local cluster'}: "
                f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}",
                hint="start it with `ray start --head`, or check the address (ray://HOST:10001)",
            ) from None

    @property
    def workers(self) -> int:
        if self._requested is not None:
            return self._requested
        cpus = int(self._ray.cluster_resources().get("CPU", 1))
        return max(1, cpus)

    def describe(self) -> dict[str, Any]:
        nodes = [n for n in self._ray.nodes() if n.get("Alive")]
        return {
            **super().describe(),
            "address": self.address or "local",
            "nodes": len(nodes),
            "cluster_cpus": int(self._ray.cluster_resources().get("CPU", 0)),
            "layout": "one actor per CPU; each pins its measurements' threads to one core",
        }

    # -- running ----------------------------------------------------------------------

    def map_unordered(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> Iterator[TaskResult]:
        import cloudpickle

        ray = self._ray
        payload = ray.put(cloudpickle.dumps(fn))
        pending = list(range(len(items)))
        attempts = dict.fromkeys(pending, 0)
        running: dict[Any, tuple[int, int]] = {}  # object ref -> (item index, actor slot)
        free = list(range(self.workers))
        while pending or running:
            while pending and free:
                index, slot = pending.pop(0), free.pop(0)
                actor = self._actor(slot)
                running[actor.run.remote(payload, items[index])] = (index, slot)
            done, _ = ray.wait(list(running), num_returns=1)
            ref = done[0]
            index, slot = running.pop(ref)
            try:
                value = ray.get(ref)
            except ray.exceptions.RayTaskError as exc:  # the task raised: as in-process, it goes up
                raise exc.as_instanceof_cause() from None
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError):
                self._actors[slot] = None  # a fresh actor takes its place
                attempts[index] += 1
                free.append(slot)
                if attempts[index] > self.retries:
                    yield TaskResult(
                        index, error=f"Ray worker died {attempts[index]} times running this task"
                    )
                else:
                    pending.append(index)
                continue
            free.append(slot)
            yield TaskResult(index, value)

    def _actor(self, slot: int) -> Any:
        while len(self._actors) <= slot:
            self._actors.append(None)
        if self._actors[slot] is None:
            self._actors[slot] = _actor_class(self._ray).options(num_cpus=1).remote(slot)
        return self._actors[slot]

    def close(self) -> None:
        for actor in self._actors:
            if actor is not None:
                try:
                    self._ray.kill(actor)
                except Exception:  # already gone with its node
                    pass
        self._actors = []


_ACTOR: Any = None


def _actor_class(ray: Any) -> Any:
    """The actor type, defined once Ray is imported (keeps ``import hwnas`` free of Ray)."""
    global _ACTOR
    if _ACTOR is None:

        class EvaluationActor:
            """Holds the functions it was sent; pins itself and its measurements to one core."""

            def __init__(self, slot: int) -> None:
                import os

                from hwnas.measurement.timing import THREAD_ENV_VARS

                cores = sorted(os.sched_getaffinity(0))
                os.sched_setaffinity(0, {cores[slot % len(cores)]})
                os.environ.update({name: "1" for name in THREAD_ENV_VARS})
                try:
                    import torch

                    torch.set_num_threads(1)
                except ImportError:
                    pass

            def run(self, payload: bytes, item: Any) -> Any:
                from hwnas.search_core.executor import call_pickled

                return call_pickled(payload, item)

        _ACTOR = ray.remote(EvaluationActor)
    return _ACTOR


def _autoload_flag() -> str:
    import os

    return os.environ.get("HWNAS_DISABLE_PLUGIN_AUTOLOAD", "")


def _check_reachable(address: str) -> None:
    """Fail fast with a clear error when nothing listens at a ``ray://HOST:PORT`` address."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"Ray address {address!r}: port {port!r} is not a number") from None
    try:
        with socket.create_connection((host or "127.0.0.1", number), timeout=5):
            return
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}",
            hint="start it with `ray start --head` (its client server listens on port 10001)",
        ) from None
