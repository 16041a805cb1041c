"""The :class:`Measurer`: cache, compile, verify and time models on one target; ``measure`` and ``measure_many``.

It ties the steps together; each lives in its own module: the protocol
(:mod:`~hwnas.measurement.protocol`), artifacts (:mod:`~hwnas.measurement.artifact_store`),
the worker's job (:mod:`~hwnas.measurement.timing`), isolation
(:mod:`~hwnas.measurement.isolation`) and the cache (:mod:`~hwnas.measurement.cache`).
"""

from __future__ import annotations

import dataclasses
import math
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.digests import stable_hash
from hwnas.errors import CompileError, HwnasError, MeasurementError
from hwnas.measurement.artifact_store import ArtifactStore
from hwnas.measurement.probe import probe_ir
from hwnas.measurement.protocol import DEFAULT_PROTOCOL, MeasurementProtocol
from hwnas.measurement.resolve import resolve_target
from hwnas.measurement.results import Measurement, MeasurementFailure, MeasureResult, Statistics
from hwnas.measurement.timing import WorkerReport, run_measurement, thread_env
from hwnas.measurement.timing_lock import cores_locked, usable_core_ids
from hwnas.measurement.verification import Check, make_check

if TYPE_CHECKING:
    from hwnas.ir import GraphIR
    from hwnas.measurement.artifact import Artifact
    from hwnas.measurement.cache import MeasurementCache
    from hwnas.measurement.isolation import Worker, WorkerPool
    from hwnas.measurement.target import Target

#: Models whose inputs and reference outputs a :class:`Measurer` keeps at once.
REFERENCES_KEPT = 8


#: The worker-pool slot of the compile worker (measurement workers use slots 0, 1, ...).
COMPILE_SLOT = -1


class Measurer:
    """Compiles, verifies, times (isolated) and caches models on one target.

    ``cache=True`` uses the default cache under ``~/.cache/hwnas`` (or
    ``$HWNAS_CACHE_DIR``), a path or :class:`MeasurementCache` another one,
    ``None`` none. Artifacts are kept under ``artifact_dir`` (default: next
    to the cache), keyed by target fingerprint and IR key, and reused.
    """

    def __init__(
        self,
        target: Target | str,
        protocol: MeasurementProtocol = DEFAULT_PROTOCOL,
        *,
        cache: MeasurementCache | str | Path | bool | None = True,
        artifact_dir: str | Path | None = None,
        pool: WorkerPool | None = None,
    ) -> None:
        from hwnas.measurement.cache import MeasurementCache, default_cache_dir
        from hwnas.measurement.isolation import default_pool

        self.target = resolve_target(target) if isinstance(target, str) else target
        self.target.check_available()
        #: The protocol as asked for (``rtol``/``atol`` None: the target's or the model's own).
        self.requested = protocol
        self.protocol = protocol.for_target(self.target.tolerance)
        if cache is True:
            self.cache: MeasurementCache | None = MeasurementCache()
        elif cache is None or cache is False:
            self.cache = None
        elif isinstance(cache, MeasurementCache):
            self.cache = cache
        else:
            self.cache = MeasurementCache(Path(cache))
        self.artifact_dir = (
            Path(artifact_dir) if artifact_dir else default_cache_dir() / "artifacts"
        )
        self.pool = pool or default_pool()
        self.threads = self.target.threads(protocol.threads)
        self._fingerprint = self.target.fingerprint()
        self._fingerprint_hash = stable_hash(self._fingerprint)
        self.artifacts = ArtifactStore(self.artifact_dir, self.target, self._fingerprint_hash)
        self._verifications: dict[str, Verification] = {}
        self._lock = threading.Lock()  # guards the verifications (measure_many runs threads)
        #: The worker's report of the last measurement run here (its stage times, for benchmarks).
        self.last_report: WorkerReport | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Sent to a search worker: the worker process starts its own measurement workers.
        state = dict(self.__dict__)
        state.update(pool=None, _verifications={}, _lock=None, last_report=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        from hwnas.measurement.isolation import default_pool

        self.__dict__.update(state)
        self.pool = default_pool()
        self._lock = threading.Lock()

    # -- keys --------------------------------------------------------------

    def cache_key(self, ir: GraphIR) -> str:
        """(IR key, input shapes, target fingerprint, protocol, threads) hashed: one measurement's identity."""
        return stable_hash(
            {
                "ir": ir.key,
                "inputs": [str(spec) for spec in ir.input_specs],
                "target": self.target.kind,
                "fingerprint": self._fingerprint_hash,
                "protocol": self.protocol.key(),
                "threads": self.threads,
            },
            length=64,
        )

    def artifact_root(self, ir: GraphIR) -> Path:
        return self.artifacts.path(ir)

    # -- steps ---------------------------------------------------------------

    def cached(self, ir: GraphIR) -> Measurement | None:
        """The cached measurement of ``ir`` on this target and protocol, if any."""
        if self.cache is None:
            return None
        return self.cache.get(self.cache_key(ir))

    def compile(self, ir: GraphIR) -> Artifact:
        """Compile ``ir`` (or reuse the artifact compiled before for the same target fingerprint).

        The target compiles in the isolated compile worker under the protocol's
        ``compile_timeout_s``: a compiler crash or hang fails this model only.
        """
        return self.artifacts.compile(
            ir, self.pool.worker({}, COMPILE_SLOT), self.protocol.compile_timeout_s
        )

    def run_isolated(
        self,
        artifact: Artifact,
        ir: GraphIR,
        slot: int = 0,
        verification: Verification | None = None,
    ) -> tuple[WorkerReport | None, MeasurementFailure | None, int]:
        """Verify and time ``artifact`` in worker ``slot``; retries when a remote device is lost.

        ``verification`` (default: :meth:`verification` of ``ir``) says what to
        check first; a probe it holds is compiled here.
        """
        if verification is None:
            verification = self.verification(ir)
        probe = None
        if verification.probe is not None and verification.probe_check is not None:
            probe = (self.compile(verification.probe), verification.probe_check)
        worker = self.worker(slot)
        # Local timing holds the machine-wide lock of its cores; a remote board times elsewhere.
        cores = () if self.target.remote else usable_core_ids()
        lost: list[str] = []
        for attempt in range(1 + self.protocol.device_retries):
            with cores_locked(cores) as waited:
                outcome = worker.call(
                    run_measurement,
                    (self.target, artifact, verification.check, self.protocol, self.threads, probe),
                    timeout=self.protocol.timeout_s,
                )
            if not outcome.ok:
                kind = outcome.failure
                return (
                    None,
                    self._failure(ir, kind, outcome.reason, outcome.traceback, outcome.seconds),
                    attempt,
                )
            report: WorkerReport = dataclasses.replace(
                outcome.value, cores=cores, lock_wait_s=waited
            )
            self.last_report = report
            if report.status == "ok":
                return report, None, attempt
            if report.status == "device_lost":
                lost.append(report.reason)
                continue
            return (
                None,
                self._failure(ir, report.status, report.reason, report.traceback, outcome.seconds),
                attempt,
            )
        reason = f"device lost {len(lost)} time(s); last: {lost[-1]}"
        return None, self._failure(ir, "device_lost", reason), len(lost) - 1

    def worker(self, slot: int = 0) -> Worker:
        """The measurement worker of ``slot``, its threads pinned (a remote target's drives a board)."""
        env = thread_env(self.threads) if not self.target.remote else {}
        return self.pool.worker(env, slot)

    def verification(self, ir: GraphIR) -> Verification:
        """What ``ir``'s artifact is checked with before timing (kept for the last few models).

        Two inputs and their torch references; when those lie within the
        tolerance of each other (an untrained network), also the same graph
        with probe weights. Raises :class:`~hwnas.errors.MeasurementError`
        (failure kind ``unverifiable``) when even that carries no signal.
        """
        with self._lock:
            found = self._verifications.get(ir.key)
            if found is None:
                found = self._verification(ir)
                if len(self._verifications) >= REFERENCES_KEPT:
                    self._verifications.pop(next(iter(self._verifications)))
                self._verifications[ir.key] = found
            return found

    def _verification(self, ir: GraphIR) -> Verification:
        rtol, atol = self.protocol.rtol, self.protocol.atol
        assert rtol is not None and atol is not None  # for_target() filled them in
        check = make_check(ir, rtol, atol)
        if check.carries_signal:
            return Verification(check)
        probe = probe_ir(ir) if getattr(ir, "module", None) is not None else None
        probe_check = make_check(probe, rtol, atol, weights="probe") if probe is not None else None
        if probe is None or probe_check is None or not probe_check.carries_signal:
            raise self._failure(ir, "unverifiable", _no_signal(ir, check, probe_check)).to_error()
        return Verification(check, probe, probe_check)

    def _failure(
        self, ir: GraphIR, kind: str, reason: str, tb: str = "", seconds: float = 0.0
    ) -> MeasurementFailure:
        return MeasurementFailure(self.target.label, ir.key, kind, reason, tb, seconds)

    def measure_one(self, ir: GraphIR, slot: int = 0) -> MeasureResult:
        """Cache, compile, verify, time, cache again; never raises for one model's failure."""
        start = time.perf_counter()
        hit = self.cached(ir)
        if hit is not None:
            return hit
        try:
            artifact = self.compile(ir)
        except HwnasError as exc:
            return self._failure(ir, "compile", exc.message, traceback.format_exc())
        try:
            verification = self.verification(ir)
        except MeasurementError as exc:
            failure = getattr(exc, "failure", None)
            if isinstance(failure, MeasurementFailure):
                return failure
            raise
        except HwnasError as exc:  # the reference itself did not run
            return self._failure(ir, "error", exc.message, traceback.format_exc())
        try:
            report, failure, retries = self.run_isolated(artifact, ir, slot, verification)
        except HwnasError as exc:  # the probe did not compile
            return self._failure(ir, "compile", exc.message, traceback.format_exc())
        if failure is not None:
            return failure
        assert report is not None
        measurement = self._measurement(
            ir, artifact, report, retries, time.perf_counter() - start, verification
        )
        if self.cache is not None:
            self.cache.put(self.cache_key(ir), measurement, target=self.target.label)
        return measurement

    def _measurement(
        self,
        ir: GraphIR,
        artifact: Artifact,
        report: WorkerReport,
        retries: int,
        seconds: float,
        verification: Verification,
    ) -> Measurement:
        attempts = report.attempts
        kept = min(range(len(attempts)), key=lambda i: Statistics.of(attempts[i]).cv)
        samples = attempts[kept]
        stats = Statistics.of(samples)
        shapes = tuple(tuple(spec.shape) for spec in ir.input_specs)
        items = shapes[0][0] if shapes and shapes[0] else 1
        return Measurement(
            target=self.target.label,
            fingerprint=self._fingerprint,
            fingerprint_hash=self._fingerprint_hash,
            ir_key=ir.key,
            input_shapes=shapes,
            protocol=self.protocol,
            threads=self.threads,
            samples_s=samples,
            discarded_s=tuple(a for i, a in enumerate(attempts) if i != kept),
            timer=report.timer,
            median_s=stats.median,
            p90_s=stats.p90,
            iqr_s=stats.iqr,
            mean_s=stats.mean,
            cv=stats.cv,
            throughput=items / stats.median if stats.median > 0 else math.inf,
            noisy=stats.cv > self.protocol.cv_threshold,
            max_abs_error=report.max_abs_error,
            peak_memory_bytes=report.peak_memory_bytes,
            macs=_optional_int(getattr(ir, "macs", None)),
            device=dict(report.device),
            retries=retries,
            cores=report.cores,
            lock_wait_s=report.lock_wait_s,
            compile_s=artifact.compile_s,
            measure_s=seconds,
            created=time.time(),
            verification=verification.describe(),
        )

    def measure(self, ir: GraphIR) -> Measurement:
        """Measure one model; a failure raises :class:`~hwnas.errors.MeasurementError` (compile: CompileError)."""
        result = self.measure_one(ir)
        if isinstance(result, MeasurementFailure):
            if result.kind == "compile":
                raise CompileError(result.reason)
            raise result.to_error()
        return result

    def measure_many(
        self,
        irs: Iterable[GraphIR],
        *,
        on_result: Callable[[int, MeasureResult], None] | None = None,
    ) -> list[MeasureResult]:
        """Measure several models; remote targets spread them over all free devices at once.

        Results come back in input order; ``on_result(index, result)`` is called
        as each finishes. One model's failure never stops the others.
        """
        models = list(irs)
        slots = max(1, min(self.target.parallel_slots(), len(models)))
        results: list[MeasureResult | None] = [None] * len(models)
        free: queue.Queue[int] = queue.Queue()
        for slot in range(slots):
            free.put(slot)

        def job(index: int) -> None:
            slot = free.get()
            try:
                result = self.measure_one(models[index], slot)
            finally:
                free.put(slot)
            results[index] = result
            if on_result is not None:
                on_result(index, result)

        if slots == 1:
            for index in range(len(models)):
                job(index)
        else:
            with ThreadPoolExecutor(
                max_workers=slots, thread_name_prefix="hwnas-measure"
            ) as executor:
                for future in [executor.submit(job, i) for i in range(len(models))]:
                    future.result()
        return [r for r in results if r is not None]


@dataclass(frozen=True)
class Verification:
    """How one model is checked before timing: its own two-input check, and a probe if that has no signal."""

    check: Check
    probe: GraphIR | None = None
    probe_check: Check | None = None

    def describe(self) -> str:
        own = f"2 inputs, own weights (signal {self.check.signal:.3g}x tolerance)"
        if self.probe_check is None:
            return own
        return (
            f"{own}, and probe weights (signal {self.probe_check.signal:.3g}x tolerance): "
            "the own outputs barely depend on the input"
        )


def _no_signal(ir: GraphIR, check: Check, probe: Check | None) -> str:
    """Why a model cannot be checked: its outputs (and its probe's, if any) do not depend on the input."""
    found = (
        f"the reference outputs for two different inputs differ by at most {check.signal:.2g}x "
        f"the tolerance (needed: {check.margin:g}x), so a lowering that ignored its input "
        "would pass the check"
    )
    if probe is not None:
        found += f"; with re-seeded probe weights too ({probe.signal:.2g}x)"
    elif getattr(ir, "module", None) is None:
        found += " (an ONNX model: hwnas cannot re-seed its weights to probe it)"
    return found


def measure(
    target: Target | str,
    ir: GraphIR,
    protocol: MeasurementProtocol = DEFAULT_PROTOCOL,
    *,
    cache: MeasurementCache | str | Path | bool | None = True,
    artifact_dir: str | Path | None = None,
) -> Measurement:
    """Compile ``ir`` for ``target``, check its outputs against torch, time it in a worker, cache it.

    The same (IR, input shape, target fingerprint, protocol) is never measured
    twice: a cached result comes back with ``cached=True``. Raises
    :class:`~hwnas.errors.MeasurementError` for a crash, hang, output
    mismatch or lost device, :class:`~hwnas.errors.CompileError` if it does not compile.
    """
    return Measurer(target, protocol, cache=cache, artifact_dir=artifact_dir).measure(ir)


def measure_many(
    target: Target | str,
    irs: Iterable[GraphIR],
    protocol: MeasurementProtocol = DEFAULT_PROTOCOL,
    *,
    cache: MeasurementCache | str | Path | bool | None = True,
    artifact_dir: str | Path | None = None,
    on_result: Callable[[int, MeasureResult], None] | None = None,
) -> list[MeasureResult]:
    """Measure several models on one target; failures come back as :class:`MeasurementFailure`."""
    measurer = Measurer(target, protocol, cache=cache, artifact_dir=artifact_dir)
    return measurer.measure_many(irs, on_result=on_result)


def _optional_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
