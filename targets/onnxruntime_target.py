"""The ``onnxruntime`` target: the IR exported to ONNX, optimised offline by ONNX Runtime, run on CPU or CUDA.

Compiling writes ``model.onnx`` and ONNX Runtime's optimised ``model.opt.onnx``
(the offline mode of its graph optimiser); the worker loads the latter as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas import (
    Artifact,
    Availability,
    CompileError,
    ConfigError,
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

LOADER = "onnxruntime-session"
SOURCE = "model.onnx"
ENTRY = "model.opt.onnx"
PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def session_options(threads: int | None, level: str) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[level])
    options.log_severity_level = 3
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


class OnnxRuntimeRunner(Runner):
    """An inference session; on CUDA, inputs and outputs stay on the device through an IO binding."""

    def __init__(self, path: Path, device: str, threads: int) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.device = device
        # The model was optimised when compiled: loading it must not rewrite it again.
        options = session_options(threads, "disable")
        self.session = ort.InferenceSession(str(path), options, providers=[PROVIDERS[device]])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self._feeds: dict[str, Any] = {}
        self._binding: Any = None
        self._outputs: list[Any] = []

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        if len(inputs) != len(self.input_names):
            raise ConfigError(f"model takes {len(self.input_names)} input(s), got {len(inputs)}")
        self._feeds = dict(zip(self.input_names, inputs, strict=True))
        if self.device == "cuda":
            binding = self.session.io_binding()
            for name, value in self._feeds.items():
                binding.bind_ortvalue_input(
                    name, self._ort.OrtValue.ortvalue_from_numpy(value, "cuda", 0)
                )
            for name in self.output_names:
                binding.bind_output(name, "cuda", 0)
            self._binding = binding

    def run(self) -> None:
        if self._binding is not None:
            self.session.run_with_iobinding(self._binding)
            self._binding.synchronize_outputs()
        else:
            self._outputs = self.session.run(self.output_names, self._feeds)

    def outputs(self) -> list[np.ndarray]:
        if self._binding is not None:
            return list(self._binding.copy_outputs_to_cpu())
        return list(self._outputs)

    def device_info(self) -> dict[str, Any]:
        return {"device": self.device, "providers": self.session.get_providers()}


class OnnxRuntimeTarget(Target):
    kind = "onnxruntime"
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

    def load(self, artifact: Artifact, threads: int) -> Runner:
        return OnnxRuntimeRunner(artifact.path(), self.device, threads)


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
