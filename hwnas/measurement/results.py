"""What a measurement gives: :class:`Measurement` (raw samples and statistics) or :class:`MeasurementFailure`.

Plain frozen data that pickles and round-trips through JSON; producing them is the measurer's job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from hwnas.errors import MeasurementError
from hwnas.measurement.protocol import MeasurementProtocol


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
    #: Cores the measurement held the machine-wide timing lock of (none for remote boards).
    cores: tuple[int, ...] = field(default=(), compare=False)
    lock_wait_s: float = field(default=0.0, compare=False)
    compile_s: float = field(default=0.0, compare=False)
    measure_s: float = field(default=0.0, compare=False)
    created: float = field(default=0.0, compare=False)
    cached: bool = field(default=False, compare=False)
    #: What the outputs were checked with before timing (inputs, whose weights, how much signal).
    verification: str = field(default="", compare=False)

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
        values["cores"] = tuple(data.get("cores", ()))
        return cls(**values)


@dataclass(frozen=True)
class MeasurementFailure:
    """A measurement that gave no latency, and why.

    ``kind`` is one of ``compile``, ``mismatch`` (outputs differ from the
    reference), ``unverifiable`` (the reference outputs do not depend on the
    input, so no check could fail), ``crash``, ``timeout``, ``device_lost``, ``error``.
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
    "unverifiable": "the model's outputs barely depend on its input (untrained or degenerate weights); "
    "load trained weights, or give a torch model so hwnas can probe it with re-seeded weights",
    "timeout": "raise MeasurementProtocol.timeout_s, or check that the runtime does not hang",
    "crash": "the runtime crashed on this model; the log tail above says where",
    "device_lost": "the device went away and no other one took over; check the board farm",
}

MeasureResult = Union[Measurement, MeasurementFailure]  # noqa: UP007 (a runtime alias on Python 3.10)


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
