"""Static int8 quantisation of a :class:`~hwnas.ir.GraphIR`: its ONNX lowering through ONNX Runtime's QDQ quantiser.

Calibration samples are checked against the IR's input before anything runs;
the result is an ONNX-sourced IR whose reference is the quantised model itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import CompileError, ConfigError

if TYPE_CHECKING:
    import numpy as np

    from hwnas.ir.graph import GraphIR
    from hwnas.ir.nodes import TensorSpec

#: Ops whose inputs are quantised: where int8 kernels pay off (ONNX Runtime fuses the QDQ
#: pairs around them into QLinearConv / MatMulInteger); norms, softmax and adds stay fp32.
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
SCHEME = (
    "onnxruntime static quantization, QDQ format, uint8 activations (min/max calibration), "
    f"int8 per-channel weights, on {'/'.join(QUANTIZED_OPS)}"
)


def check_calibration(specs: Sequence[TensorSpec], samples: Any, *, where: str) -> list[np.ndarray]:
    """``samples`` (an array of N examples, or a list of single examples) as batch-1 arrays fitting ``specs``.

    Raises :class:`ConfigError` naming the expected and the given shape and
    dtype, before any quantisation runs.
    """
    import numpy as np

    if len(specs) != 1:
        raise ConfigError(
            f"{where}: int8 calibration supports one-input models, this one has {len(specs)}"
        )
    spec = specs[0]
    expected = f"({', '.join(['N', *map(str, spec.shape[1:])])}) {spec.dtype}"
    try:
        if isinstance(samples, (list, tuple)):
            array = np.concatenate([np.asarray(s) for s in samples]) if samples else np.zeros((0,))
        else:
            array = np.asarray(samples)
    except ValueError as exc:
        raise ConfigError(f"{where}: calibration examples differ in shape ({exc})") from None
    if array.ndim != len(spec.shape) or tuple(array.shape[1:]) != tuple(spec.shape[1:]):
        raise ConfigError(
            f"{where}: calibration data has shape {tuple(array.shape)}, but the model's input "
            f"{spec.name!r} takes {expected}",
            hint="pass calibration examples shaped like the model's input (see `hwnas space show`)",
        )
    if array.dtype != np.dtype(spec.dtype):
        raise ConfigError(
            f"{where}: calibration data has dtype {array.dtype}, but the model's input {spec.name!r} takes {spec.dtype}",
            hint=f"convert it first, e.g. x.astype('{spec.dtype}')",
        )
    if len(array) == 0:
        raise ConfigError(f"{where}: calibration data is empty", hint="give at least one example")
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise ConfigError(f"{where}: calibration data holds NaN or infinite values")
    return [array[i : i + 1] for i in range(len(array))]


def quantize_int8(ir: GraphIR, samples: Sequence[np.ndarray], directory: Path) -> GraphIR:
    """``ir`` lowered to ONNX and statically quantised to int8 on ``samples``; the int8 model as an IR.

    ``samples`` come from :func:`check_calibration`. Files go under
    ``directory`` (kept: the IR points at them). The IR keeps ``ir``'s example
    inputs; its metadata says the precision and the scheme.
    """
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    directory.mkdir(parents=True, exist_ok=True)
    name = ir.input_specs[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.pending = iter(samples)

        def get_next(self) -> dict[str, np.ndarray] | None:
            sample = next(self.pending, None)
            return None if sample is None else {name: sample}

    source = ir.to_onnx(directory / "fp32.onnx")
    prepared, quantized = directory / "fp32.pre.onnx", directory / "int8.onnx"
    try:
        # ONNX Runtime's own advice: fold and fuse first, so quantised ops line up with its int8 kernels.
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(quantized),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=list(QUANTIZED_OPS),
        )
    except Exception as exc:
        lines = str(exc).strip().splitlines()
        raise CompileError(
            f"int8 quantisation of IR {ir.name!r} failed: {type(exc).__name__}: {lines[0] if lines else ''}"
        ) from exc
    return load_int8(quantized, ir, len(samples))


def load_int8(path: Path, source: GraphIR, samples: int) -> GraphIR:
    """The int8 model ``quantize_int8`` wrote at ``path`` for ``source``, as an IR with its metadata."""
    from hwnas.ir.graph import GraphIR

    int8 = GraphIR.from_onnx(path, name=f"{source.name}@int8")
    # Real inputs (token ids, images) verify better than random ones: keep the source's.
    int8.example_inputs = source.example_inputs
    int8.metadata.update(
        source.metadata
        | {
            "precision": "int8",
            "scheme": SCHEME,
            "calibration_samples": samples,
            "fp32_ir_key": source.key,
            # the int8 graph stores weights as int8, so count the architecture on its fp32 source
            "fp32_macs": source.macs,
            "fp32_params": source.params,
        }
    )
    return int8
