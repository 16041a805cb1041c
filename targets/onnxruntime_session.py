"""The ``onnxruntime-session`` standalone loader: an ONNX model in an ONNX Runtime session, on CPU or CUDA.

It imports only numpy and onnxruntime: the onnxruntime target's measurement
worker and every exported artifact's ``run.py`` run this same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}
OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def session_options(threads: int | None, level: str) -> Any:
    """Session options at optimisation ``level``; ``threads`` pins the intra-op pool (None: runtime's choice)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[level])
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return options


class Session:
    """An inference session; on CUDA, inputs and outputs stay on the device through an IO binding."""

    def __init__(self, path: Path, device: str, threads: int | None) -> None:
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

    def set_inputs(self, inputs: list[Any]) -> None:
        if len(inputs) != len(self.input_names):
            raise ValueError(f"model takes {len(self.input_names)} input(s), got {len(inputs)}")
        self._feeds = dict(zip(self.input_names, inputs))
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

    def outputs(self) -> list[Any]:
        if self._binding is not None:
            return list(self._binding.copy_outputs_to_cpu())
        return list(self._outputs)

    def device_info(self) -> dict[str, Any]:
        return {"device": self.device, "providers": self.session.get_providers()}


def load(path: Path, details: dict[str, Any], threads: int | None) -> Session:
    """Open the optimised model at ``path`` with the provider it was compiled for."""
    cuda = details.get("provider") == PROVIDERS["cuda"]
    return Session(path, "cuda" if cuda else "cpu", threads)
