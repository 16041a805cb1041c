"""The ``tvm-relax-vm`` standalone loader: a TVM Relax library in the stateful VM, locally or over RPC.

It imports only numpy and TVM: the ``tvm`` target's measurement worker, the
``tvm-rpc`` target (on a board's session) and every exported artifact's
``run.py`` run this same file. Timing uses the VM's own ``time_evaluator``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

ENTRY_FUNCTION = "main"


class RelaxVM:
    """A Relax VM over a loaded library on device ``dev`` (local, or an RPC session's)."""

    native_timer = "tvm.time_evaluator"

    def __init__(self, library: Any, dev: Any, info: dict[str, Any] | None = None) -> None:
        from tvm import relax

        self.dev = dev
        self.vm = relax.VirtualMachine(library, dev)
        self._info = dict(info or {})

    def set_inputs(self, inputs: list[Any]) -> None:
        import tvm

        self.vm.set_input(ENTRY_FUNCTION, *[tvm.runtime.tensor(x, self.dev) for x in inputs])

    def run(self) -> None:
        self.vm.invoke_stateful(ENTRY_FUNCTION)
        self.dev.sync()

    def outputs(self) -> list[Any]:
        return [t.numpy() for t in _leaves(self.vm.get_outputs(ENTRY_FUNCTION))]

    def time_native(self, repeat: int, min_repeat_ms: float) -> list[float]:
        """Seconds per run, one per repeat, from the VM's ``time_evaluator`` on the device."""
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


def load(path: Path, details: dict[str, Any], threads: int | None) -> RelaxVM:
    """Load the library at ``path`` on the device it was compiled for (CUDA or this CPU)."""
    if threads:  # read once, when TVM starts its thread pool (the worker has set it already)
        os.environ.setdefault("TVM_NUM_THREADS", str(threads))
    import tvm

    cuda = details.get("tvm_target", {}).get("kind") == "cuda"
    dev = tvm.cuda(0) if cuda else tvm.cpu(0)
    library = tvm.runtime.load_module(str(path))
    return RelaxVM(library, dev, {"device": "cuda" if cuda else "llvm", "threads": threads})
