"""The ``torch`` target: PyTorch eager execution on CPU (``torch:cpu``) or an NVIDIA GPU (``torch:cuda``).

The artifact is the IR's ``torch.export`` program saved as ``.pt2``, so the
measurement worker needs no model classes; its graph runs op by op, eagerly.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas import (
    Artifact,
    Availability,
    CompileError,
    Runner,
    Target,
    cpu_fingerprint,
    gpu_fingerprint,
    has_nvidia_gpu,
    hookimpl,
    module_available,
    package_version,
)

if TYPE_CHECKING:
    import numpy as np

    from hwnas import GraphIR

LOADER = "torch-export"
ENTRY = "model.pt2"
DEVICES = ("cpu", "cuda")


class TorchRunner(Runner):
    """An exported program's module on one device, run under ``torch.inference_mode``."""

    def __init__(self, path: Path, device: str, threads: int) -> None:
        import torch

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

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        torch = self._torch
        self._inputs = tuple(torch.from_numpy(x.copy()).to(self.device) for x in inputs)

    def run(self) -> None:
        with self._torch.inference_mode():
            self._outputs = self.module(*self._inputs)
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)

    def outputs(self) -> list[np.ndarray]:
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


class TorchTarget(Target):
    kind = "torch"
    description = "PyTorch eager execution of the static module (CPU, or CUDA with an NVIDIA GPU)"
    options_help = {
        "threads": "intra-op CPU threads (default: the protocol's, else every usable core)"
    }

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.device = self.device_from_spec(DEVICES, "cpu", what="torch device")

    @classmethod
    def listed_specs(cls) -> tuple[str, ...]:
        return tuple(f"torch:{d}" for d in DEVICES)

    def available(self) -> Availability:
        version = package_version("torch")
        if version is None or not module_available("torch"):
            return Availability.no("torch is not installed (pip install torch)")
        if self.device == "cuda":
            if not has_nvidia_gpu():
                return Availability.no("no NVIDIA GPU/driver on this machine")
            if "+cpu" in version:
                return Availability.no(f"torch {version} is a CPU-only build")
        return Availability.yes()

    def fingerprint(self) -> dict[str, Any]:
        fp: dict[str, Any] = {
            "runtime": "torch",
            "version": package_version("torch"),
            "device": self.device,
        }
        if self.device == "cuda":
            fp.update(gpu_fingerprint())
        # torch's CPU kernels run with every thread setting; the CPU still matters for CUDA launches
        fp.update(cpu_fingerprint(self.pinned_threads()))
        return fp

    def compile(self, ir: GraphIR, workdir: Path) -> Artifact:
        import torch

        if getattr(ir, "exported", None) is None:
            raise CompileError(
                f"the torch target needs a torch model; IR {ir.name!r} comes from {ir.source}",
                hint="build the IR with GraphIR.from_module / from_subnet, or pick onnxruntime or tvm",
            )
        torch.export.save(ir.exported, str(workdir / ENTRY))
        return self.artifact(ir, workdir, ENTRY, loader=LOADER, details={"device": self.device})

    def load(self, artifact: Artifact, threads: int) -> Runner:
        return TorchRunner(artifact.path(), "cuda:0" if self.device == "cuda" else "cpu", threads)


@hookimpl
def hwnas_register_targets(register: Any) -> None:
    register(TorchTarget)
