"""Reading an ONNX file into IR ops: shapes from ONNX shape inference, MACs for Conv, Gemm and MatMul.

ONNX does not tell parameters from buffers, so ``params`` counts every
floating-point initializer an op reads (folded batch norms have none left).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from hwnas.ir import costs
from hwnas.ir.nodes import OpNode, TensorSpec, freeze

# ONNX op type -> IR kind, where snake-casing the op type is not it
_KINDS: dict[str, str] = {
    "Gemm": "linear",
    "MatMul": "matmul",
    "BatchNormalization": "batch_norm",
    "HardSwish": "hardswish",
    "HardSigmoid": "hardsigmoid",
    "GlobalAveragePool": "adaptive_avg_pool2d",
    "ReduceMean": "mean",
    "LayerNormalization": "layer_norm",
    "Transpose": "permute",
    "Gather": "embedding",
}


@dataclass(frozen=True)
class OnnxGraph:
    ops: tuple[OpNode, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    output_tensors: tuple[str, ...]
    weights_digest: str


def read_onnx(path: Path) -> OnnxGraph:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except FileNotFoundError:
        raise ConfigError(f"ONNX file {path} does not exist") from None
    except Exception as exc:
        raise ConfigError(
            f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})"
        ) from None
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=False)
    except Exception as exc:
        raise ConfigError(f"{path}: ONNX shape inference failed: {exc}") from None
    graph = model.graph

    initializers = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    initializers[node.output[0]] = numpy_helper.to_array(attr.t)
    specs: dict[str, TensorSpec] = {}
    for info in (*graph.input, *graph.value_info, *graph.output):
        spec = _spec(info)
        if spec is not None:
            specs[info.name] = spec
    weights = {
        name: TensorSpec(name, tuple(int(d) for d in array.shape), _np_dtype(array.dtype))
        for name, array in initializers.items()
    }

    inputs = tuple(
        specs[i.name] for i in graph.input if i.name not in initializers and i.name in specs
    )
    used_names = {spec.name for spec in inputs}
    ops: list[OpNode] = []
    seen: set[str] = set()
    for index, node in enumerate(graph.node):
        if node.op_type == "Constant":
            continue
        name = node.name or f"{_snake(node.op_type)}_{index}"
        while name in used_names:
            name = f"{name}_"
        used_names.add(name)
        activations = [specs[t] for t in node.input if t and t not in weights and t in specs]
        missing = [t for t in node.input if t and t not in weights and t not in specs]
        if missing:
            raise ConfigError(
                f"{path}: node {name!r} reads {missing}, whose shapes ONNX shape inference could not find"
            )
        read = [weights[t] for t in node.input if t in weights]
        outputs = []
        for t in node.output:
            if t not in specs:
                raise ConfigError(f"{path}: no shape inferred for output {t!r} of node {name!r}")
            outputs.append(specs[t])
        attrs = {a.name: _attr_value(a) for a in node.attribute}
        role = [specs.get(t) or weights.get(t) for t in node.input]
        kind = _kind(node.op_type, role, attrs, initializers, node)
        params = 0
        for w in read:
            if w.name not in seen and w.dtype.startswith(("float", "bfloat")):
                seen.add(w.name)
                params += w.numel
        ops.append(
            OpNode(
                name=name,
                op=node.op_type,
                kind=kind,
                inputs=tuple(t.name for t in activations),
                outputs=tuple(outputs),
                weights=tuple(read),
                attrs=tuple(sorted((k, freeze(v)) for k, v in attrs.items())),
                macs=_macs(node.op_type, kind, role, outputs, attrs),
                params=params,
                bytes_moved=sum(t.nbytes for t in (*activations, *read, *outputs)),
            )
        )
    output_tensors = tuple(o.name for o in graph.output)
    outputs = tuple(specs[t] for t in output_tensors)
    digest = hashlib.sha256()
    for name in sorted(initializers):
        array = initializers[name]
        digest.update(f"{name}:{array.shape}:{array.dtype}".encode())
        digest.update(array.tobytes())
    return OnnxGraph(
        ops=tuple(ops),
        inputs=inputs,
        outputs=outputs,
        output_tensors=output_tensors,
        weights_digest=digest.hexdigest()[:16],
    )


def _spec(info: Any) -> TensorSpec | None:
    from onnx import helper

    kind = info.type.WhichOneof("value")
    if kind != "tensor_type" or not info.type.tensor_type.HasField("shape"):
        return None
    tensor = info.type.tensor_type
    # A symbolic dimension (a batch named "N") is taken as 1: the IR is static.
    shape = tuple(int(d.dim_value) if d.HasField("dim_value") else 1 for d in tensor.shape.dim)
    dtype = _np_dtype(helper.tensor_dtype_to_np_dtype(tensor.elem_type))
    return TensorSpec(info.name, shape, dtype)


def _np_dtype(dtype: Any) -> str:
    import numpy as np

    return np.dtype(dtype).name


def _snake(op_type: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", op_type).lower()


def _attr_value(attr: Any) -> Any:
    from onnx import helper

    value = helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, (list, tuple)):
        return [
            v.decode(errors="replace") if isinstance(v, bytes) else v
            for v in value
            if isinstance(v, (int, float, str, bytes))
        ]
    if isinstance(value, (int, float, str)):
        return value
    return type(value).__name__


def _kind(
    op_type: str, role: list[Any], attrs: dict[str, Any], initializers: dict[str, Any], node: Any
) -> str:
    if op_type == "Conv" and len(role) > 1 and role[1] is not None:
        return f"conv{len(role[1].shape) - 2}d"
    if op_type == "Clip" and len(node.input) >= 3:
        low = initializers.get(node.input[1])
        high = initializers.get(node.input[2])
        if low is not None and high is not None and float(low) == 0.0 and float(high) == 6.0:
            return "relu6"
    return _KINDS.get(op_type, _snake(op_type))


def _macs(
    op_type: str, kind: str, role: list[Any], outputs: list[TensorSpec], attrs: dict[str, Any]
) -> int:
    if not outputs or any(r is None for r in role[:2]) or len(role) < 2:
        return 0
    out = outputs[0].shape
    if op_type == "Conv":
        return costs.conv_macs(out, role[1].shape)
    if op_type == "Gemm":
        left = role[0].shape
        inner = left[0] if attrs.get("transA", 0) else left[-1]
        return costs.matmul_macs(out, (inner,))
    if op_type == "MatMul":
        return costs.matmul_macs(out, role[0].shape)
    return 0
