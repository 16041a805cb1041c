"""The :class:`Runner`: a loaded artifact bound to fixed inputs, living in the measurement worker process.

Targets return one from ``load``; what the core does with it (verify, time)
is :mod:`hwnas.measurement.timing`'s job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np


class Runner(ABC):
    """A loaded artifact bound to fixed inputs, living in the measurement worker process.

    The core calls :meth:`set_inputs` once, checks :meth:`outputs` after one
    :meth:`run`, then times :meth:`run` (or :meth:`time_native` where the
    runtime has its own evaluator). ``run`` must return only once the
    inference is done (synchronise the device).
    """

    #: Name of the runtime's own timer if :meth:`time_native` uses one.
    native_timer: ClassVar[str] = ""

    @abstractmethod
    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        """Copy the fixed inputs to the device once; every later :meth:`run` reads them."""

    @abstractmethod
    def run(self) -> None:
        """One synchronous inference on the inputs set."""

    @abstractmethod
    def outputs(self) -> list[np.ndarray]:
        """The outputs of the last :meth:`run`, as host numpy arrays in the model's output order."""

    def time_native(self, repeat: int, min_repeat_ms: float) -> list[float] | None:
        """Seconds per run, one sample per repeat, from the runtime's own evaluator.

        Each repeat runs the model enough times to last ``min_repeat_ms``.
        ``None`` (the default) makes the core time :meth:`run` with ``perf_counter``.
        """
        return None

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory of the runs so far, where the runtime tells; else ``None``."""
        return None

    def device_info(self) -> dict[str, Any]:
        """Which device ran it (e.g. the board's address); goes into the measurement."""
        return {}

    def close(self) -> None:  # noqa: B027 (optional: most runners hold nothing to release)
        """Release the runtime's resources (sessions, remote files)."""
