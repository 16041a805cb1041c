"""The ``openvino-ir`` standalone loader: an OpenVINO IR (model.xml + model.bin) compiled for a device and run.

It imports only numpy and openvino: the target's measurement worker and every
exported artifact's ``run.py`` run this same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CompiledModel:
    """One compiled model and its infer request; inputs stay bound between runs."""

    def __init__(self, path: Path, device: str, precision: str, threads: int | None) -> None:
        import openvino as ov

        self._ov = ov
        core = ov.Core()
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(str(path), device, config)
        # OpenVINO silently computes in f32 where the device lacks a precision: refuse to mislabel it
        actual = self.compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        if actual != precision:
            raise RuntimeError(f"OpenVINO runs this model in {actual} on {device}, not {precision}")
        self.request = self.compiled.create_infer_request()
        self.info = {
            "device": device,
            "name": core.get_property(device, "FULL_DEVICE_NAME"),
            "precision": actual,
            "threads": int(self.compiled.get_property("INFERENCE_NUM_THREADS")),
        }
        self._inputs: list[Any] = []

    def set_inputs(self, inputs: list[Any]) -> None:
        self._inputs = [self._ov.Tensor(x) for x in inputs]  # share the arrays' memory
        for index, tensor in enumerate(self._inputs):
            self.request.set_input_tensor(index, tensor)

    def run(self) -> None:
        self.request.infer()

    def outputs(self) -> list[Any]:
        return [
            self.request.get_output_tensor(i).data.copy() for i in range(len(self.compiled.outputs))
        ]

    def device_info(self) -> dict[str, Any]:
        return dict(self.info)


def load(path: Path, details: dict[str, Any], threads: int | None) -> CompiledModel:
    """Compile the IR at ``path`` for the device and precision the target chose."""
    return CompiledModel(
        path, details.get("device", "CPU"), details.get("precision", "f32"), threads
    )
