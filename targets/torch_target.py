"""The ``torch`` target: PyTorch eager execution on CPU (``torch:cpu``) or an NVIDIA GPU (``torch:cuda``).

The artifact is the IR's ``torch.export`` program saved as ``.pt2``, so the
measurement worker needs no model classes; its graph runs op by op, eagerly.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas import (
    Artifact,
    Availability,
    CompileError,
    Target,
    cpu_fingerprint,
    gpu_fingerprint,
    has_nvidia_gpu,
    hookimpl,
    module_available,
    package_version,
)

if TYPE_CHECKING:
    from hwnas import GraphIR

LOADER = "torch-export"
ENTRY = "model.pt2"
DEVICES = ("cpu", "cuda")


class TorchTarget(Target):
    kind = "torch"
    runtime = "torch"
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


@hookimpl
def hwnas_register_targets(register: Any) -> None:
    register(TorchTarget)


@hookimpl
def hwnas_register_loaders(register: Any) -> None:
    register(LOADER, "hwnas_targets.torch_export")
