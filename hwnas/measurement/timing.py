"""What runs inside the measurement worker: load the artifact, check its outputs, warm up, take timed samples.

The parent side (which worker, retries, the cache) is :mod:`hwnas.measurement.measurer`'s.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hwnas.measurement.results import Statistics
from hwnas.measurement.verification import compare_outputs

if TYPE_CHECKING:
    import numpy as np

    from hwnas.measurement.artifact import Artifact
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.measurement.target import Runner, Target

#: Environment variables that fix a runtime's thread count; set in the worker before any import.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TVM_NUM_THREADS")


@dataclass(frozen=True)
class WorkerReport:
    """What the worker sends back: samples of each attempt, or why it failed."""

    status: str  # "ok", "mismatch", "device_lost", "error"
    attempts: tuple[tuple[float, ...], ...] = ()
    timer: str = ""
    max_abs_error: float = 0.0
    peak_memory_bytes: int | None = None
    device: Mapping[str, Any] = field(default_factory=dict)
    reason: str = ""
    traceback: str = ""
    #: Cores whose machine-wide timing lock was held, and how long it took to get them (parent side).
    cores: tuple[int, ...] = ()
    lock_wait_s: float = 0.0


def run_measurement(
    target: Target,
    artifact: Artifact,
    inputs: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    protocol: MeasurementProtocol,
    threads: int,
) -> WorkerReport:
    """Load, verify against the reference, then time: the body of one isolated measurement."""
    runner: Runner | None = None
    try:
        runner = target.load(artifact, threads)
        runner.set_inputs(inputs)
        runner.run()
        error, mismatch = compare_outputs(runner.outputs(), reference, protocol.rtol, protocol.atol)
        if mismatch:
            return WorkerReport(
                "mismatch", max_abs_error=error, reason=mismatch, device=runner.device_info()
            )
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
        )
    except Exception as exc:
        status = "device_lost" if target.is_device_lost(exc) else "error"
        return WorkerReport(
            status, reason=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc()
        )
    finally:
        if runner is not None:
            try:
                runner.close()
            except Exception:  # closing a lost session must not hide the result
                pass


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
