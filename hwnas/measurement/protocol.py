"""The measurement protocol every target is timed by: warm-up, repeats, noise check, tolerances, timeouts.

Only the settings live here; applying them is :mod:`hwnas.measurement.timing`'s job.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hwnas.errors import ConfigError

#: The widest output tolerance any check accepts: beyond it a comparison proves nothing.
MAX_TOLERANCE = 0.5


@dataclass(frozen=True)
class MeasurementProtocol:
    """How every target is timed: the same fixed inputs, warm-up, repeats and noise check.

    Each of ``repeats`` samples is the mean of as many runs as fill
    ``min_repeat_ms``. A result whose coefficient of variation exceeds
    ``cv_threshold`` is measured again, up to ``max_remeasure`` times, and the
    least noisy attempt kept. ``threads=None`` means every usable core (a
    target spec's ``threads`` option wins). Outputs must match the torch
    reference within ``rtol``/``atol`` before anything is timed; ``None``
    takes the target's own tolerance (:attr:`Target.tolerance`: fp32 targets
    1e-3/1e-4, reduced-precision ones wider), so each measurement records the
    tolerance it was checked with.
    """

    warmup: int = 5
    repeats: int = 20
    min_repeat_ms: float = 20.0
    threads: int | None = None
    cv_threshold: float = 0.05
    max_remeasure: int = 2
    timeout_s: float = 300.0
    #: How long one compile (in its isolated worker) may take before it is killed and failed.
    compile_timeout_s: float = 1800.0
    rtol: float | None = None
    atol: float | None = None
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
            "compile_timeout_s": self.compile_timeout_s > 0,
            "rtol": self.rtol is None or 0 <= self.rtol <= MAX_TOLERANCE,
            "atol": self.atol is None or 0 <= self.atol <= MAX_TOLERANCE,
            "device_retries": self.device_retries >= 0,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ConfigError(
                f"measurement protocol: invalid {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}",
                hint=f"repeats >= 3, thresholds > 0, counts >= 0, 0 <= rtol/atol <= {MAX_TOLERANCE:g}",
            )

    def for_target(self, tolerance: tuple[float, float]) -> MeasurementProtocol:
        """This protocol with unset ``rtol``/``atol`` taken from a target's ``(rtol, atol)``."""
        rtol, atol = tolerance
        return dataclasses.replace(
            self,
            rtol=rtol if self.rtol is None else self.rtol,
            atol=atol if self.atol is None else self.atol,
        )

    def key(self) -> dict[str, Any]:
        """The fields that can change a result (not timeouts or retries): part of the cache key."""
        data = dataclasses.asdict(self)
        for name in ("timeout_s", "compile_timeout_s", "device_retries"):
            data.pop(name)
        return data

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MeasurementProtocol:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


DEFAULT_PROTOCOL = MeasurementProtocol()
