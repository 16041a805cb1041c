"""Measuring a compiled model, once for every target: protocol, statistics, verification, the ``measure`` entry point.

Targets only compile and load (:mod:`hwnas.target`); isolation is
:mod:`hwnas.isolation`, the SQLite cache :mod:`hwnas.measurement_cache`.
"""

from __future__ import annotations

import dataclasses
import math
import queue
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

from hwnas.artifact import Artifact
from hwnas.errors import CompileError, ConfigError, HwnasError, MeasurementError
from hwnas.target import Runner, Target, resolve_target, stable_hash

if TYPE_CHECKING:
    import numpy as np

    from hwnas.ir import GraphIR
    from hwnas.isolation import WorkerPool
    from hwnas.measurement_cache import MeasurementCache

#: Environment variables that fix a runtime's thread count; set in the worker before any import.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TVM_NUM_THREADS")
#: Models whose inputs and reference outputs a :class:`Measurer` keeps at once.
REFERENCES_KEPT = 8
#: One compile at a time per process: torch.export's decompositions and TVM's compile
#: (e.g. ``te.TagScope``) keep global state, so measure_many's threads (one per remote
#: device) would corrupt each other's compiles. Timing on the devices still overlaps.
_COMPILE_LOCK = threading.Lock()


@dataclass(frozen=True)
class MeasurementProtocol:
    """How every target is timed: the same fixed inputs, warm-up, repeats and noise check.

    Each of ``repeats`` samples is the mean of as many runs as fill
    ``min_repeat_ms``. A result whose coefficient of variation exceeds
    ``cv_threshold`` is measured again, up to ``max_remeasure`` times, and the
    least noisy attempt kept. ``threads=None`` means every usable core (a
    target spec's ``threads`` option wins). Outputs must match the torch
    reference within ``rtol``/``atol`` before anything is timed.
    """

    warmup: int = 5
    repeats: int = 20
    min_repeat_ms: float = 20.0
    threads: int | None = None
    cv_threshold: float = 0.05
    max_remeasure: int = 2
    timeout_s: float = 300.0
    rtol: float = 1e-3
    atol: float = 1e-4
    #: Times a measurement whose device was lost (remote board died) is retried on another.
    device_retries: int = 2

    def __post_init__(self) -> None:
        checks = {
            "warmup": self.warmup >= 0,
            "repeats": self.repeats >= 3,
            "min_repeat_ms": self.min_repeat_ms >= 0,
            "threads": self.threads is None or self.threads >= 1,
            "cv_threshold": self.cv_threshold > 0,
            "max_remeasure": self.max_remeasure >= 0,
            "timeout_s": self.timeout_s > 0,
            "rtol": self.rtol >= 0,
            "atol": self.atol >= 0,
            "device_retries": self.device_retries >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"measurement protocol: invalid {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}",
                hint="repeats >= 3, thresholds > 0, counts >= 0",
            )

    def key(self) -> dict[str, Any]:
        """The fields that can change a result (not timeouts or retries): part of the cache key."""
        data = dataclasses.asdict(self)
        for name in ("timeout_s", "device_retries"):
            data.pop(name)
        return data

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeasurementProtocol:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


DEFAULT_PROTOCOL = MeasurementProtocol()


@dataclass(frozen=True)
class Measurement:
    """One model's latency on one target: every raw sample and the statistics drawn from them.

    Times are seconds per inference. ``samples_s`` is the kept attempt;
    ``discarded_s`` the noisier attempts before it. ``throughput`` counts
    items per second (the first input's leading dimension per inference).
    """

    target: str
    fingerprint: Mapping[str, Any] = field(hash=False, compare=False)
    fingerprint_hash: str
    ir_key: str
    input_shapes: tuple[tuple[int, ...], ...]
    protocol: MeasurementProtocol
    threads: int
    samples_s: tuple[float, ...]
    discarded_s: tuple[tuple[float, ...], ...]
    timer: str
    median_s: float
    p90_s: float
    iqr_s: float
    mean_s: float
    cv: float
    throughput: float
    noisy: bool
    max_abs_error: float
    peak_memory_bytes: int | None = None
    macs: int | None = None
    device: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)
    retries: int = 0
    compile_s: float = field(default=0.0, compare=False)
    measure_s: float = field(default=0.0, compare=False)
    created: float = field(default=0.0, compare=False)
    cached: bool = field(default=False, compare=False)

    @property
    def median_ms(self) -> float:
        return self.median_s * 1e3

    @property
    def p90_ms(self) -> float:
        return self.p90_s * 1e3

    @property
    def gflops(self) -> float | None:
        """Achieved GFLOP/s (2 FLOPs per multiply-accumulate), if the model's MACs are known."""
        return 2.0 * self.macs / self.median_s / 1e9 if self.macs else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["protocol"] = self.protocol.to_dict()
        data["fingerprint"] = dict(self.fingerprint)
        data["device"] = dict(self.device)
        data["median_ms"] = self.median_ms
        data["p90_ms"] = self.p90_ms
        data["gflops"] = self.gflops
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in names}
        values["protocol"] = MeasurementProtocol.from_dict(data["protocol"])
        values["input_shapes"] = tuple(tuple(s) for s in data["input_shapes"])
        values["samples_s"] = tuple(data["samples_s"])
        values["discarded_s"] = tuple(tuple(a) for a in data["discarded_s"])
        return cls(**values)


@dataclass(frozen=True)
class MeasurementFailure:
    """A measurement that gave no latency, and why.

    ``kind`` is one of ``compile``, ``mismatch`` (outputs differ from the
    reference), ``crash``, ``timeout``, ``device_lost``, ``error``.
    """

    target: str
    ir_key: str
    kind: str
    reason: str
    traceback: str = field(default="", compare=False, repr=False)
    seconds: float = field(default=0.0, compare=False)

    def to_error(self) -> MeasurementError:
        error = MeasurementError(
            f"measuring {self.ir_key[:12]} on {self.target} failed ({self.kind}): {self.reason}",
            hint=_FAILURE_HINTS.get(self.kind),
        )
        error.failure = self  # type: ignore[attr-defined]
        return error


_FAILURE_HINTS = {
    "mismatch": "the compiled model computes something else than torch; the target is wrong for this model",
    "timeout": "raise MeasurementProtocol.timeout_s, or check that the runtime does not hang",
    "crash": "the runtime crashed on this model; the log tail above says where",
    "device_lost": "the device went away and no other one took over; check the board farm",
}

MeasureResult = Union[Measurement, MeasurementFailure]  # noqa: UP007 (a runtime alias on Python 3.10)


# -- statistics -------------------------------------------------------------


@dataclass(frozen=True)
class Statistics:
    """Summary of a list of per-run times."""

    median: float
    p90: float
    iqr: float
    mean: float
    cv: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Statistics:
        import numpy as np

        values = np.asarray(samples, dtype=np.float64)
        if values.size == 0:
            raise MeasurementError("no timing samples were taken")
        q25, median, q75, p90 = np.percentile(values, [25, 50, 75, 90])
        mean = float(values.mean())
        std = float(values.std(ddof=1)) if values.size > 1 else 0.0
        return cls(
            float(median), float(p90), float(q75 - q25), mean, std / mean if mean > 0 else 0.0
        )


# -- what runs in the worker ----------------------------------------------------


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


def compare_outputs(
    outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray], rtol: float, atol: float
) -> tuple[float, str]:
    """Largest absolute error, and what mismatched ('' when everything is within tolerance)."""
    import numpy as np

    if len(outputs) != len(reference):
        return math.inf, f"{len(outputs)} output(s) where the reference has {len(reference)}"
    worst = 0.0
    for i, (got, want) in enumerate(zip(outputs, reference, strict=True)):
        got, want = np.asarray(got), np.asarray(want)
        if got.shape != want.shape:
            return math.inf, f"output {i} has shape {got.shape}, the reference {want.shape}"
        got64, want64 = got.astype(np.float64), want.astype(np.float64)
        diff = np.abs(got64 - want64)
        diff = np.where(np.isnan(got64) & np.isnan(want64), 0.0, diff)
        error = float(np.nanmax(diff, initial=0.0)) if diff.size else 0.0
        if np.isnan(diff).any():
            error = math.inf
        worst = max(worst, error)
        if not np.allclose(got64, want64, rtol=rtol, atol=atol, equal_nan=True):
            bad = int((~np.isclose(got64, want64, rtol=rtol, atol=atol, equal_nan=True)).sum())
            return worst, (
                f"output {i}: {bad} of {got.size} values differ from the torch reference "
                f"(max abs error {error:.3g}, rtol={rtol:g}, atol={atol:g})"
            )
    return worst, ""


# -- the entry points ------------------------------------------------------------


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
        from hwnas.isolation import default_pool
        from hwnas.measurement_cache import MeasurementCache, default_cache_dir

        self.target = resolve_target(target) if isinstance(target, str) else target
        self.target.check_available()
        self.protocol = protocol
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
        self._references: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self._lock = threading.Lock()  # guards the references (measure_many runs threads)

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
        return self.artifact_dir / f"{self.target.kind}-{self._fingerprint_hash}" / ir.key

    # -- steps ---------------------------------------------------------------

    def cached(self, ir: GraphIR) -> Measurement | None:
        """The cached measurement of ``ir`` on this target and protocol, if any."""
        if self.cache is None:
            return None
        return self.cache.get(self.cache_key(ir))

    def compile(self, ir: GraphIR) -> Artifact:
        """Compile ``ir`` (or reuse the artifact compiled before for the same target fingerprint)."""
        root = self.artifact_root(ir)
        if (root / "artifact.json").is_file():
            try:
                artifact = Artifact.load(root)
                artifact.verify()
                return artifact
            except ConfigError:
                shutil.rmtree(root, ignore_errors=True)
        elif root.exists():  # left by a compile that died before writing its manifest
            shutil.rmtree(root, ignore_errors=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        # Compile into a private directory, then rename: concurrent compiles of
        # the same model never see each other's half-written files.
        tmp = Path(tempfile.mkdtemp(prefix=f".{ir.key[:16]}-", dir=root.parent))
        try:
            start = time.perf_counter()
            try:
                with _COMPILE_LOCK:
                    artifact = self.target.compile(ir, tmp)
            except HwnasError:
                raise
            except Exception as exc:
                raise CompileError(
                    f"target {self.target.label} failed to compile {ir.key[:12]}: {type(exc).__name__}: {exc}"
                ) from exc
            artifact = dataclasses.replace(
                artifact,
                root=str(root),
                compile_s=artifact.compile_s or time.perf_counter() - start,
            )
            artifact.save(tmp)
            try:
                tmp.rename(root)
            except OSError:  # another process finished the same artifact first
                return Artifact.load(root)
            return artifact
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def run_isolated(
        self, artifact: Artifact, ir: GraphIR, slot: int = 0
    ) -> tuple[WorkerReport | None, MeasurementFailure | None, int]:
        """Verify and time ``artifact`` in worker ``slot``; retries when a remote device is lost."""
        inputs, reference = self.reference(ir)
        env = thread_env(self.threads) if not self.target.remote else {}
        worker = self.pool.worker(env, slot)
        lost: list[str] = []
        for attempt in range(1 + self.protocol.device_retries):
            outcome = worker.call(
                run_measurement,
                (self.target, artifact, inputs, reference, self.protocol, self.threads),
                timeout=self.protocol.timeout_s,
            )
            if not outcome.ok:
                kind = outcome.failure
                return (
                    None,
                    self._failure(ir, kind, outcome.reason, outcome.traceback, outcome.seconds),
                    attempt,
                )
            report: WorkerReport = outcome.value
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

    def reference(self, ir: GraphIR) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The fixed inputs of ``ir`` and the reference outputs every target must reproduce."""
        with self._lock:
            found = self._references.get(ir.key)
            if found is None:
                inputs = fixed_inputs(ir)
                found = (inputs, reference_outputs(ir, inputs))
                if len(self._references) >= REFERENCES_KEPT:
                    self._references.pop(next(iter(self._references)))
                self._references[ir.key] = found
            return found

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
        report, failure, retries = self.run_isolated(artifact, ir, slot)
        if failure is not None:
            return failure
        assert report is not None
        measurement = self._measurement(ir, artifact, report, retries, time.perf_counter() - start)
        if self.cache is not None:
            self.cache.put(self.cache_key(ir), measurement, target=self.target.label)
        return measurement

    def _measurement(
        self, ir: GraphIR, artifact: Artifact, report: WorkerReport, retries: int, seconds: float
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
            compile_s=artifact.compile_s,
            measure_s=seconds,
            created=time.time(),
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


def fixed_inputs(ir: GraphIR) -> list[np.ndarray]:
    """The IR's example inputs, or (an ONNX model has none) seeded random ones of its input specs."""
    import numpy as np

    if getattr(ir, "example_inputs", None) is not None:
        return [_as_numpy(x) for x in ir.example_inputs]
    rng = np.random.default_rng(0)
    arrays = []
    for spec in ir.input_specs:
        try:
            dtype = np.dtype(spec.dtype)
        except TypeError:
            raise ConfigError(
                f"input {spec}: numpy has no dtype {spec.dtype!r} to make inputs of"
            ) from None
        if dtype.kind == "f":
            arrays.append(rng.standard_normal(spec.shape).astype(dtype))
        else:  # ids, masks and flags: 0/1 are valid for every embedding and mask
            arrays.append(rng.integers(0, 2, spec.shape).astype(dtype))
    return arrays


def reference_outputs(ir: GraphIR, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """What a correct target computes: the torch module's outputs, or for an ONNX model
    onnxruntime's with every graph optimisation off (the plain reading of the ONNX graph)."""
    if getattr(ir, "module", None) is not None:
        return [_as_numpy(x) for x in ir.reference_outputs()]
    onnx_path = getattr(ir, "onnx_path", None)
    if onnx_path is None:
        raise ConfigError(
            f"IR {ir.name!r} has neither a torch module nor an ONNX file to compute reference outputs",
            hint="build it with GraphIR.from_module, from_subnet or from_onnx",
        )
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    return list(session.run(None, dict(zip(names, inputs, strict=True))))


def thread_env(threads: int) -> dict[str, str]:
    """Environment that pins every runtime in a worker to ``threads`` threads."""
    return {name: str(threads) for name in THREAD_ENV_VARS}


def _as_numpy(value: Any) -> np.ndarray:
    import numpy as np

    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)


def _optional_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
