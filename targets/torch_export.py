"""The ``torch-export`` standalone loader: a saved ``torch.export`` program run eagerly on CPU or CUDA.

It imports only torch (the runtime) and numpy: the torch target's
measurement worker and every exported artifact's ``run.py`` run this same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class ExportedProgram:
    """An exported program's module on one device, run under ``torch.inference_mode``."""

    def __init__(self, path: Path, device: str, threads: int | None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.device = torch.device(device)
        program = torch.export.load(str(path))
        if self.device.type != "cpu":
            # moves parameters, buffers and lifted constants (Module.to() misses the constants)
            from torch.export.passes import move_to_device_pass

            program = move_to_device_pass(program, self.device)
        self.module = program.module()
        self._inputs: tuple[Any, ...] = ()
        self._outputs: Any = None
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)

    def set_inputs(self, inputs: list[Any]) -> None:
        torch = self._torch
        self._inputs = tuple(torch.from_numpy(x.copy()).to(self.device) for x in inputs)

    def run(self) -> None:
        with self._torch.inference_mode():
            self._outputs = self.module(*self._inputs)
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)

    def outputs(self) -> list[Any]:
        torch = self._torch
        leaves, _ = torch.utils._pytree.tree_flatten(self._outputs)
        return [t.detach().cpu().numpy() for t in leaves if isinstance(t, torch.Tensor)]

    def peak_memory_bytes(self) -> int | None:
        if self.device.type == "cuda":
            return int(self._torch.cuda.max_memory_allocated(self.device))
        return None

    def device_info(self) -> dict[str, Any]:
        if self.device.type == "cuda":
            return {"device": self._torch.cuda.get_device_name(self.device)}
        return {"device": "cpu"}


def load(path: Path, details: dict[str, Any], threads: int | None) -> ExportedProgram:
    """Load the program at ``path`` onto the device it was exported for."""
    return ExportedProgram(path, "cuda:0" if details.get("device") == "cuda" else "cpu", threads)
