"""The ``openvino`` target: the IR exported to ONNX, converted to OpenVINO IR, run by OpenVINO on the CPU.

``openvino:cpu?precision=bf16&threads=1``: ``precision`` is OpenVINO's
inference precision (f32, or f16/bf16 where the CPU computes them natively);
reduced precisions declare wider output tolerances.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas import Artifact, Availability, CompileError, ConfigError, Target, cpu_flags

if TYPE_CHECKING:
    from hwnas import GraphIR, TargetSpec

LOADER = "openvino-ir"
ENTRY, WEIGHTS = "model.xml", "model.bin"
#: precision -> (rtol, atol) outputs must meet against the fp32 torch reference
PRECISIONS = {"f32": (1e-3, 1e-4), "f16": (1e-2, 5e-3), "bf16": (2e-2, 2e-2)}
#: CPU flags that compute a reduced precision natively (elsewhere OpenVINO falls back to f32)
NATIVE_FLAGS = {
    "f16": ("avx512_fp16", "amx_fp16", "asimdhp"),
    "bf16": ("avx512_bf16", "amx_bf16", "bf16"),
}


class OpenVinoTarget(Target):
    kind = "openvino"
    runtime = "openvino"
    description = (
        "OpenVINO on this CPU (IR converted from ONNX); f32, or f16/bf16 where the CPU has them"
    )
    options_help = {
        "threads": "inference threads (default: the protocol's, else every usable core)",
        "precision": "inference precision: f32 (default), f16 or bf16",
    }

    def __init__(self, spec: TargetSpec) -> None:
        super().__init__(spec)
        self.device_from_spec(("cpu",), "cpu", what="OpenVINO device")
        self.precision = spec.option("precision") or "f32"
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"target {spec}: precision={self.precision!r} is not one OpenVINO runs",
                hint=f"precisions: {', '.join(PRECISIONS)}",
            )
        self.tolerance = PRECISIONS[self.precision]

    @classmethod
    def listed_specs(cls) -> tuple[str, ...]:
        return tuple(
            f"openvino:cpu?precision={p}" if p != "f32" else "openvino:cpu" for p in PRECISIONS
        )

    def available(self) -> Availability:
        installed = super().available()
        flags = NATIVE_FLAGS.get(self.precision, ())
        if installed and flags and not set(flags) & cpu_flags():
            return Availability.no(
                f"this CPU has no native {self.precision} ({' or '.join(flags)}); OpenVINO would compute in f32"
            )
        return installed

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "device": "CPU", "precision": self.precision}

    def compile(self, ir: GraphIR, workdir: Path) -> Artifact:
        import openvino as ov

        onnx = ir.to_onnx(workdir / "model.onnx")
        try:
            model = ov.convert_model(str(onnx))
        except Exception as exc:  # OpenVINO raises its own types from C++
            first = str(exc).strip().splitlines()
            raise CompileError(
                f"OpenVINO cannot convert IR {ir.name!r}: {first[0] if first else exc}"
            ) from exc
        ov.save_model(model, str(workdir / ENTRY), compress_to_fp16=False)
        onnx.unlink()  # the IR pair is the artifact; export writes its own model.onnx
        details = {"device": "CPU", "precision": self.precision, "openvino": ov.__version__}
        return self.artifact(ir, workdir, ENTRY, files=[WEIGHTS], loader=LOADER, details=details)
