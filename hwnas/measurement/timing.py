"""What runs inside the measurement worker: load the artifact, check its outputs, warm up, take timed samples.

The parent side (which worker, retries, the cache) is :mod:`hwnas.measurement.measurer`'s.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hwnas.measurement.results import Statistics
from hwnas.measurement.verification import compare_outputs

if TYPE_CHECKING:
    from hwnas.measurement.artifact import Artifact
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.measurement.target import Runner, Target
    from hwnas.measurement.verification import Check

#: Environment variables that fix a runtime's thread count; set in the worker before any import.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TVM_NUM_THREADS")


@dataclass(frozen=True)
class WorkerReport:
    """What the worker sends back: samples of each attempt, or why it failed.

    ``stages`` gives ``(name, wall s, CPU s)`` of what the worker did
    (``probe``, ``load``, ``verify``, ``time``), for benchmarks.
    """

    status: str  # "ok", "mismatch", "device_lost", "error"
    attempts: tuple[tuple[float, ...], ...] = ()
    timer: str = ""
    max_abs_error: float = 0.0
    peak_memory_bytes: int | None = None
    device: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    traceback: str = ""
    stages: tuple[tuple[str, float, float], ...] = ()
    #: Cores whose machine-wide timing lock was held, and how long it took to get them (parent side).
    cores: tuple[int, ...] = ()
    lock_wait_s: float = 0.0


class _Stages:
    """Wall and CPU seconds of each named step, in order."""

    def __init__(self) -> None:
        self.done: list[tuple[str, float, float]] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.done.append((name, time.perf_counter() - wall, time.process_time() - cpu))


def run_measurement(
    target: Target,
    artifact: Artifact,
    check: Check,
    protocol: MeasurementProtocol,
    threads: int,
    probe: tuple[Artifact, Check] | None = None,
) -> WorkerReport:
    """Verify (the probe artifact first, if any), then time: the body of one isolated measurement.

    ``probe`` is the same graph compiled with re-seeded weights, checked
    when the model's own outputs carry no signal (an untrained network).
    """
    runner: Runner | None = None
    stage = _Stages()
    try:
        if probe is not None:
            with stage("probe"):
                probe_runner = target.load(probe[0], threads)
                try:
                    _, mismatch = verify(probe_runner, probe[1], protocol)
                finally:
                    probe_runner.close()
            if mismatch:
                return WorkerReport(
                    "mismatch",
                    reason=f"with probe weights (the model's own outputs do not depend on its input): {mismatch}",
                    stages=tuple(stage.done),
                )
        with stage("load"):
            runner = target.load(artifact, threads)
        with stage("verify"):
            error, mismatch = verify(runner, check, protocol)
        if mismatch:
            return WorkerReport(
                "mismatch",
                max_abs_error=error,
                reason=mismatch,
                device=runner.device_info(),
                stages=tuple(stage.done),
            )
        with stage("time"):
            for _ in range(protocol.warmup):
                runner.run()
            attempts: list[tuple[float, ...]] = []
            timer = ""
            for _ in range(1 + protocol.max_remeasure):
                samples, timer = time_runner(runner, protocol.repeats, protocol.min_repeat_ms)
                attempts.append(samples)
                if Statistics.of(samples).cv <= protocol.cv_threshold:
                    break
        return WorkerReport(
            "ok",
            attempts=tuple(attempts),
            timer=timer,
            max_abs_error=error,
            peak_memory_bytes=runner.peak_memory_bytes(),
            device=runner.device_info(),
            stages=tuple(stage.done),
        )
    except Exception as exc:
        status = "device_lost" if target.is_device_lost(exc) else "error"
        return WorkerReport(
            status,
            reason=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(),
            stages=tuple(stage.done),
        )
    finally:
        if runner is not None:
            try:
                runner.close()
            except Exception:  # closing a lost session must not hide the result
                pass


def verify(runner: Runner, check: Check, protocol: MeasurementProtocol) -> tuple[float, str]:
    """Run each of the check's inputs and compare with its reference: (largest error, what mismatched).

    The first inputs are run last, so they stay set for timing.
    """
    worst = 0.0
    count = len(check.inputs)
    for index in reversed(range(count)):
        runner.set_inputs(list(check.inputs[index]))
        runner.run()
        error, mismatch = compare_outputs(
            runner.outputs(), check.references[index], protocol.rtol, protocol.atol
        )
        worst = max(worst, error)
        if mismatch:
            return worst, f"on input set {index + 1} of {count}, {mismatch}"
    return worst, ""


def time_runner(
    runner: Runner, repeats: int, min_repeat_ms: float
) -> tuple[tuple[float, ...], str]:
    """``repeats`` samples of seconds per run: the runtime's evaluator if it has one, else perf_counter."""
    native = runner.time_native(repeats, min_repeat_ms)
    if native is not None:
        return tuple(float(s) for s in native), runner.native_timer
    number = _runs_per_repeat(runner, min_repeat_ms)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            runner.run()
        samples.append((time.perf_counter() - start) / number)
    return tuple(samples), "perf_counter"


def _runs_per_repeat(runner: Runner, min_repeat_ms: float) -> int:
    """Grow the run count until one repeat lasts ``min_repeat_ms`` (as TVM's time_evaluator does)."""
    number = 1
    while True:
        start = time.perf_counter()
        for _ in range(number):
            runner.run()
        elapsed_ms = (time.perf_counter() - start) * 1e3
        if elapsed_ms >= min_repeat_ms or number >= 1 << 20:
            return number
        grow = math.ceil(min_repeat_ms / max(elapsed_ms, 1e-3) * number * 1.1)
        number = max(number * 2, grow) if elapsed_ms < min_repeat_ms / 10 else max(number + 1, grow)


def thread_env(threads: int) -> dict[str, str]:
    """Environment that pins every runtime in a worker to ``threads`` threads."""
    return {name: str(threads) for name in THREAD_ENV_VARS}
