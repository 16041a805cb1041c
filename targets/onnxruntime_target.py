"""The ``onnxruntime`` target: the IR exported to ONNX, optimised offline by ONNX Runtime, run on CPU or CUDA.

Compiling writes ``model.onnx`` and ONNX Runtime's optimised ``model.opt.onnx``
(the offline mode of its graph optimiser); the worker loads the latter as is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas import (
    Artifact,
    Availability,
    CompileError,
    ConfigError,
    Target,
    cpu_fingerprint,
    gpu_fingerprint,
    has_nvidia_gpu,
    hookimpl,
    module_available,
    package_version,
)
from hwnas_targets.onnxruntime_session import OPT_LEVELS, PROVIDERS, session_options

if TYPE_CHECKING:
    from hwnas import GraphIR

LOADER = "onnxruntime-session"
SOURCE = "model.onnx"
ENTRY = "model.opt.onnx"


class OnnxRuntimeTarget(Target):
    kind = "onnxruntime"
    runtime = "onnxruntime"
    description = "ONNX Runtime on the IR exported to ONNX (CPU execution provider, or CUDA)"
    # int8: the QDQ model, run by its integer kernels (QLinearConv, MatMulInteger)
    precisions = ("fp32", "int8")
    options_help = {
        "threads": "intra-op threads (default: the protocol's, else every usable core)",
        "opt": "graph optimisation level: disable, basic, extended, all (default)",
    }

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.device = self.device_from_spec(tuple(PROVIDERS), "cpu", what="onnxruntime device")
        self.level = spec.option("opt") or "all"
        if self.level not in OPT_LEVELS:
            raise ConfigError(
                f"target {spec}: opt={self.level!r} is not a level",
                hint=f"levels: {', '.join(OPT_LEVELS)}",
            )

    @classmethod
    def listed_specs(cls) -> tuple[str, ...]:
        return tuple(f"onnxruntime:{d}" for d in PROVIDERS)

    def available(self) -> Availability:
        if not module_available("onnxruntime"):
            return Availability.no("onnxruntime is not installed (pip install onnxruntime)")
        if self.device == "cuda":
            if not has_nvidia_gpu():
                return Availability.no("no NVIDIA GPU/driver on this machine")
            if not _has_cuda_provider():
                return Availability.no(
                    "this onnxruntime build has no CUDA provider (pip install onnxruntime-gpu)"
                )
        return Availability.yes()

    def fingerprint(self) -> dict[str, Any]:
        version = package_version("onnxruntime") or package_version("onnxruntime-gpu")
        fp: dict[str, Any] = {
            "runtime": "onnxruntime",
            "version": version,
            "provider": PROVIDERS[self.device],
            "opt": self.level,
        }
        if self.device == "cuda":
            fp.update(gpu_fingerprint())
        fp.update(cpu_fingerprint(self.pinned_threads()))
        return fp

    def compile(self, ir: GraphIR, workdir: Path) -> Artifact:
        import onnxruntime as ort

        source = ir.to_onnx(workdir / SOURCE)
        options = session_options(self.pinned_threads(), self.level)
        options.optimized_model_filepath = str(workdir / ENTRY)
        try:
            ort.InferenceSession(str(source), options, providers=[PROVIDERS[self.device]])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise CompileError(
                f"onnxruntime cannot load IR {ir.name!r}: {str(exc).strip().splitlines()[0]}"
            ) from exc
        return self.artifact(
            ir,
            workdir,
            ENTRY,
            files=[SOURCE],
            loader=LOADER,
            details={
                "provider": PROVIDERS[self.device],
                "opt": self.level,
                "onnxruntime": ort.__version__,
            },
        )


def _has_cuda_provider() -> bool:
    """Does the installed onnxruntime ship its CUDA provider library? (No import.)"""
    import importlib.util

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return False
    capi = Path(next(iter(spec.submodule_search_locations))) / "capi"
    return any(capi.glob("libonnxruntime_providers_cuda*"))


@hookimpl
def hwnas_register_targets(register: Any) -> None:
    register(OnnxRuntimeTarget)


@hookimpl
def hwnas_register_loaders(register: Any) -> None:
    register(LOADER, "hwnas_targets.onnxruntime_session")
