"""A target with a deliberately wrong lowering: onnxruntime over an ONNX emitter with one rule broken.

Module-level, so the isolated compile worker imports it by name and the
fault happens where a real target's would: inside its compile.
``fake-broken-lowering:cpu?fault=swapped-kernel`` flips every convolution's
kernel; ``fault=dropped-op`` leaves out the squeeze-excite gate's multiply.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas import hookimpl
from hwnas.errors import ConfigError
from hwnas.ir import onnx_emitter
from hwnas.measurement.artifact import Artifact
from hwnas_targets.onnxruntime_target import OnnxRuntimeTarget

_CONV = onnx_emitter.RULES["aten.conv2d.default"]


def flipped_conv(e: Any, op: Any) -> None:
    """A swapped kernel: every convolution's kernel turned upside down and left to right."""
    weights = e.weights

    class Flipped(dict):
        def get(self, name: str, default: Any = None) -> Any:
            tensor = weights.get(name, default)
            return tensor.flip(-1, -2) if tensor is not None and tensor.dim() == 4 else tensor

    e.weights = Flipped(weights)
    try:
        _CONV(e, op)
    finally:
        e.weights = weights


def dropped_gate(e: Any, op: Any) -> None:
    """A dropped op: the squeeze-excite gate's multiply left out (its input passed through)."""
    e.alias[op.outputs[0].name] = e.value(op.inputs[0])


#: fault name -> (the emitter rule it replaces, the wrong rule)
FAULTS = {
    "swapped-kernel": ("aten.conv2d.default", flipped_conv),
    "dropped-op": ("aten.mul.Tensor", dropped_gate),
}


class BrokenLoweringTarget(OnnxRuntimeTarget):
    kind = "fake-broken-lowering"
    description = "onnxruntime over an ONNX emitter with one rule broken on purpose"
    options_help = {**OnnxRuntimeTarget.options_help, "fault": ", ".join(FAULTS)}

    def __init__(self, spec: Any) -> None:
        super().__init__(spec)
        self.fault = spec.option("fault") or ""
        if self.fault not in FAULTS:
            raise ConfigError(f"target {spec}: fault={self.fault!r} is not one of {list(FAULTS)}")

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "fault": self.fault}

    def compile(self, ir: Any, workdir: Path) -> Artifact:
        op, wrong = FAULTS[self.fault]
        right = onnx_emitter.RULES[op]
        onnx_emitter.RULES[op] = wrong
        try:
            return super().compile(ir, workdir)
        finally:
            onnx_emitter.RULES[op] = right


class RegistersBrokenLowering:
    @hookimpl
    def hwnas_register_targets(self, register: Any) -> None:
        register(BrokenLoweringTarget)
