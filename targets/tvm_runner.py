"""Running a TVM Relax library in the stateful VM, locally or on a remote RPC device.

Shared by the ``tvm`` and ``tvm-rpc`` targets: stateful calls (``set_input`` /
``invoke_stateful`` / ``get_outputs``) work the same over RPC, and timing uses
the VM's own ``time_evaluator`` on the device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hwnas import Runner

if TYPE_CHECKING:
    import numpy as np

ENTRY_FUNCTION = "main"


class RelaxVMRunner(Runner):
    """A Relax VM over a loaded library on device ``dev`` (local, or an RPC session's)."""

    native_timer = "tvm.time_evaluator"

    def __init__(self, library: Any, dev: Any, info: dict[str, Any] | None = None) -> None:
        from tvm import relax

        self.dev = dev
        self.vm = relax.VirtualMachine(library, dev)
        self._info = dict(info or {})

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        import tvm

        self.vm.set_input(ENTRY_FUNCTION, *[tvm.runtime.tensor(x, self.dev) for x in inputs])

    def run(self) -> None:
        self.vm.invoke_stateful(ENTRY_FUNCTION)
        self.dev.sync()

    def outputs(self) -> list[np.ndarray]:
        return [t.numpy() for t in _leaves(self.vm.get_outputs(ENTRY_FUNCTION))]

    def time_native(self, repeat: int, min_repeat_ms: float) -> list[float] | None:
        timer = self.vm.time_evaluator(
            "invoke_stateful",
            self.dev,
            number=1,
            repeat=repeat,
            min_repeat_ms=math.ceil(min_repeat_ms),
        )
        return [float(s) for s in timer(ENTRY_FUNCTION).results]

    def device_info(self) -> dict[str, Any]:
        return dict(self._info)


def _leaves(value: Any) -> list[Any]:
    """A VM result is a tensor or (nested) tuple of them; flatten in order."""
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]
