"""Lowering a :class:`~hwnas.ir.GraphIR` straight to an ONNX model: one emit rule per aten op of the IR.

Weights come from the IR's torch module by state-dict name; shapes are the
IR's, so every reshape is static. Batch norm is folded into the convolution
before it. An op without a rule (or a variant a rule does not cover) raises
:class:`NotLowerable`; :mod:`hwnas.ir.lowering` then uses torch's exporter.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hwnas.ir.nodes import OpNode, TensorSpec
from hwnas.ir.onnx_writer import OnnxWithArrays

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from hwnas.ir.graph import GraphIR

#: ONNX IR version written: opset 18 needs 8, and onnxruntime and TVM read 10.
IR_VERSION = 10


class NotLowerable(Exception):
    """An op the emitter has no rule for, or a form of one it does not cover."""


class _Emitter:
    """Builds one ONNX graph: nodes, initializers, and the ONNX value name of every IR tensor."""

    def __init__(self, ir: GraphIR, opset: int) -> None:
        import numpy as np
        from onnx import helper

        self.np = np
        self.helper = helper
        self.ir = ir
        self.opset = opset
        module = ir.module
        assert module is not None
        self.weights: dict[str, Any] = dict(module.named_parameters())
        self.weights.update(module.named_buffers())
        self.nodes: list[onnx.NodeProto] = []
        self.arrays: list[tuple[str, np.ndarray]] = []  # the initializers
        self.outputs = {
            t: spec.name for t, spec in zip(ir.output_tensors, ir.output_specs, strict=True)
        }
        # every value name the graph will hold, so an initializer never takes one
        self.names: set[str] = set(ir.tensors) | set(self.outputs.values())
        # IR tensor -> the ONNX value holding it, for ops that only alias their input
        self.alias: dict[str, str] = {}
        self.folded: set[str] = set()  # batch norms folded into the conv before them
        self.weight_values: dict[str, str] = {}
        self.readers: dict[str, list[OpNode]] = {}
        for op in ir.ops:
            for tensor in op.inputs:
                self.readers.setdefault(tensor, []).append(op)

    # -- names and values ----------------------------------------------------------------

    def value(self, tensor: str) -> str:
        """The ONNX value name an op reads for IR tensor ``tensor``."""
        return self.alias.get(tensor, self.outputs.get(tensor, tensor))

    def out(self, spec: TensorSpec) -> str:
        """The ONNX value name an op writes IR tensor ``spec`` to (graph outputs get their output name)."""
        return self.outputs.get(spec.name, spec.name)

    def node(self, op_type: str, inputs: list[str], outputs: list[str], **attrs: Any) -> None:
        self.nodes.append(self.helper.make_node(op_type, inputs, outputs, **attrs))

    def constant(self, name: str, array: np.ndarray) -> str:
        """Add an initializer (a fresh name if taken) and return its name."""
        unique = name
        index = 1
        while unique in self.names:
            unique = f"{name}_{index}"
            index += 1
        self.names.add(unique)
        self.arrays.append((unique, self.np.asarray(array)))
        return unique

    def weight(self, spec: TensorSpec) -> np.ndarray:
        tensor = self.weights.get(spec.name)
        if tensor is None:
            raise NotLowerable(f"weight {spec.name!r} is not a parameter or buffer of the module")
        return tensor.detach().cpu().numpy()

    def weight_value(self, spec: TensorSpec) -> str:
        """The initializer holding weight ``spec`` (added on first use)."""
        if spec.name not in self.weight_values:
            self.weight_values[spec.name] = self.constant(spec.name, self.weight(spec))
        return self.weight_values[spec.name]

    def dtype(self, spec: TensorSpec) -> Any:
        return self.np.dtype(spec.dtype)

    # -- the graph -------------------------------------------------------------------------

    def emit(self) -> OnnxWithArrays:
        from onnx import helper

        for op in self.ir.ops:
            if op.name in self.folded:
                continue
            rule = RULES.get(op.op)
            if rule is None:
                raise NotLowerable(f"no ONNX rule for {op.op} ({op.kind})")
            rule(self, op)
        for tensor, name in self.outputs.items():
            if self.value(tensor) != name:  # the output is an alias of another tensor
                self.node("Identity", [self.value(tensor)], [name])
        graph = helper.make_graph(
            self.nodes,
            _safe_name(self.ir.name),
            [_value_info(spec) for spec in self.ir.input_specs],
            [_value_info(spec) for spec in self.ir.output_specs],
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", self.opset)],
            producer_name="hwnas",
            ir_version=IR_VERSION,
        )
        return OnnxWithArrays(model, self.arrays)

    def sole_reader(self, op: OpNode) -> OpNode | None:
        """The op that alone reads ``op``'s output, if the output is no graph output."""
        tensor = op.outputs[0].name
        readers = self.readers.get(tensor, [])
        if len(readers) != 1 or tensor in self.outputs:
            return None
        return readers[0]


def emit_onnx(ir: GraphIR, opset: int = 18) -> onnx.ModelProto:
    """``ir`` as an ONNX model (inputs and outputs named as the IR's); raises :class:`NotLowerable`."""
    return emit(ir, opset).proto()


def emit(ir: GraphIR, opset: int = 18) -> OnnxWithArrays:
    """``ir`` as an ONNX model whose weights are still arrays (:meth:`OnnxWithArrays.write` writes it)."""
    if ir.module is None:
        raise NotLowerable("the IR has no torch module to take weights from")
    return _Emitter(ir, opset).emit()


# -- rules ----------------------------------------------------------------------------------


def _one_input(op: OpNode) -> str:
    if len(op.inputs) != 1:
        raise NotLowerable(f"{op.op} with {len(op.inputs)} activation inputs")
    return op.inputs[0]


def _present(op: OpNode, roles: tuple[str, ...]) -> dict[str, TensorSpec]:
    """Which of an op's optional weight arguments it has (an absent one is recorded as a ``None`` attr)."""
    present = [r for r in roles if not (r in dict(op.attrs) and op.attr(r) is None)]
    if len(present) != len(op.weights):
        raise NotLowerable(f"{op.op}: cannot tell which weights it reads")
    return dict(zip(present, op.weights, strict=True))


def _conv(e: _Emitter, op: OpNode) -> None:
    x = _one_input(op)
    weights = _present(op, ("weight", "bias"))
    if "weight" not in weights:
        raise NotLowerable(f"{op.op} whose weight is an activation")
    w = e.weight(weights["weight"])
    b = e.weight(weights["bias"]) if "bias" in weights else None
    out = op.outputs[0]
    norm = e.sole_reader(op)
    folded = norm is not None and norm.op == "aten.batch_norm.default" and not norm.attr("training")
    if folded:
        assert norm is not None
        w, b = _fold_batch_norm(e, norm, w, b)
        e.folded.add(norm.name)
        out = norm.outputs[0]
    rank = w.ndim - 2
    padding = list(op.attr("padding"))
    inputs = [
        e.value(x),
        e.constant(f"{op.name}.weight", w) if folded else e.weight_value(weights["weight"]),
    ]
    if b is not None:
        inputs.append(
            e.constant(f"{op.name}.bias", b) if folded else e.weight_value(weights["bias"])
        )
    e.node(
        "Conv",
        inputs,
        [e.out(out)],
        kernel_shape=list(w.shape[2:]),
        strides=list(op.attr("stride")),
        pads=padding + padding if len(padding) == rank else padding,
        dilations=list(op.attr("dilation")),
        group=int(op.attr("groups")),
    )


def _fold_batch_norm(e: _Emitter, norm: OpNode, w: Any, b: Any) -> tuple[Any, Any]:
    """Conv weights and bias with an inference batch norm folded in (as ONNX exporters do)."""
    np = e.np
    parts = _present(norm, ("weight", "bias", "running_mean", "running_var"))
    mean, var = e.weight(parts["running_mean"]), e.weight(parts["running_var"])
    gamma = e.weight(parts["weight"]) if "weight" in parts else np.ones_like(mean)
    beta = e.weight(parts["bias"]) if "bias" in parts else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + np.float32(norm.attr("eps")))
    folded_w = (w * scale.reshape(-1, *([1] * (w.ndim - 1)))).astype(w.dtype)
    folded_b = ((b if b is not None else 0) - mean) * scale + beta
    return folded_w, folded_b.astype(w.dtype)


def _batch_norm(e: _Emitter, op: OpNode) -> None:
    if op.attr("training"):
        raise NotLowerable("batch norm in training mode")
    x = _one_input(op)
    parts = _present(op, ("weight", "bias", "running_mean", "running_var"))
    if "running_mean" not in parts or "running_var" not in parts:
        raise NotLowerable("batch norm without running statistics")
    mean = e.weight(parts["running_mean"])
    scale = (
        e.weight_value(parts["weight"])
        if "weight" in parts
        else e.constant(f"{op.name}.scale", e.np.ones_like(mean))
    )
    bias = (
        e.weight_value(parts["bias"])
        if "bias" in parts
        else e.constant(f"{op.name}.bias", e.np.zeros_like(mean))
    )
    e.node(
        "BatchNormalization",
        [
            e.value(x),
            scale,
            bias,
            e.weight_value(parts["running_mean"]),
            e.weight_value(parts["running_var"]),
        ],
        [e.out(op.outputs[0])],
        epsilon=float(op.attr("eps")),
    )


def _unary(op_type: str, **attrs: Any) -> Callable[[_Emitter, OpNode], None]:
    def rule(e: _Emitter, op: OpNode) -> None:
        e.node(op_type, [e.value(_one_input(op))], [e.out(op.outputs[0])], **attrs)

    return rule


def _alias(e: _Emitter, op: OpNode) -> None:
    if op.op == "aten.dropout.default" and op.attr("train"):
        raise NotLowerable("dropout in training mode")
    e.alias[op.outputs[0].name] = e.value(_one_input(op))


def _silu(e: _Emitter, op: OpNode) -> None:
    x = e.value(_one_input(op))
    gate = f"{op.name}.sigmoid"
    e.node("Sigmoid", [x], [gate])
    e.node("Mul", [x, gate], [e.out(op.outputs[0])])


def _gelu(e: _Emitter, op: OpNode) -> None:
    x = e.value(_one_input(op))
    approximate = op.attr("approximate", "none")
    if approximate not in ("none", "tanh"):
        raise NotLowerable(f"gelu approximate={approximate!r}")
    out = e.out(op.outputs[0])
    if e.opset >= 20:
        e.node("Gelu", [x], [out], approximate=approximate)
        return
    dtype = e.dtype(op.outputs[0])
    c = lambda name, v: e.constant(f"{op.name}.{name}", e.np.array(v, dtype=dtype))  # noqa: E731
    n = lambda suffix: f"{op.name}.{suffix}"  # noqa: E731
    if approximate == "none":  # 0.5 x (1 + erf(x / sqrt 2))
        e.node("Div", [x, c("sqrt2", math.sqrt(2.0))], [n("scaled")])
        e.node("Erf", [n("scaled")], [n("erf")])
    else:  # 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        e.node("Mul", [x, x], [n("x2")])
        e.node("Mul", [n("x2"), x], [n("x3")])
        e.node("Mul", [n("x3"), c("k", 0.044715)], [n("kx3")])
        e.node("Add", [x, n("kx3")], [n("inner")])
        e.node("Mul", [n("inner"), c("s", math.sqrt(2.0 / math.pi))], [n("scaled")])
        e.node("Tanh", [n("scaled")], [n("erf")])
    e.node("Add", [n("erf"), c("one", 1.0)], [n("plus1")])
    e.node("Mul", [x, n("plus1")], [n("xplus")])
    e.node("Mul", [n("xplus"), c("half", 0.5)], [out])


def _binary(op_type: str, commutative: bool) -> Callable[[_Emitter, OpNode], None]:
    def rule(e: _Emitter, op: OpNode) -> None:
        if op.attr("alpha", 1) != 1:
            raise NotLowerable(f"{op.op} with alpha={op.attr('alpha')}")
        out = op.outputs[0]
        if any(e.dtype(t) != e.dtype(out) for t in (*_input_specs(e, op), *op.weights)):
            raise NotLowerable(f"{op.op} mixing dtypes")
        if len(op.inputs) == 2 and not op.weights:
            operands = [e.value(op.inputs[0]), e.value(op.inputs[1])]
        elif len(op.inputs) == 1 and len(op.weights) == 1 and commutative:
            operands = [e.value(op.inputs[0]), e.weight_value(op.weights[0])]
        elif len(op.inputs) == 1 and not op.weights and isinstance(op.attr("other"), (int, float)):
            scalar = e.np.array(op.attr("other"), dtype=e.dtype(out))
            operands = [e.value(op.inputs[0]), e.constant(f"{op.name}.other", scalar)]
        else:
            raise NotLowerable(
                f"{op.op} on {len(op.inputs)} activations and {len(op.weights)} weights"
            )
        e.node(op_type, operands, [e.out(out)])

    return rule


def _input_specs(e: _Emitter, op: OpNode) -> list[TensorSpec]:
    return [e.ir.tensors[t] for t in op.inputs]


def _matmul(e: _Emitter, op: OpNode) -> None:
    if len(op.inputs) != 2 or op.weights:
        raise NotLowerable("matmul with a weight operand")
    e.node("MatMul", [e.value(op.inputs[0]), e.value(op.inputs[1])], [e.out(op.outputs[0])])


def _linear(e: _Emitter, op: OpNode) -> None:
    x = _one_input(op)
    weights = _present(op, ("weight", "bias"))
    if "weight" not in weights:
        raise NotLowerable("linear whose weight is an activation")
    w = e.weight(weights["weight"])
    out = e.out(op.outputs[0])
    if len(e.ir.tensors[x].shape) == 2:
        inputs = [e.value(x), e.weight_value(weights["weight"])]
        if "bias" in weights:
            inputs.append(e.weight_value(weights["bias"]))
        e.node("Gemm", inputs, [out], transB=1)
        return
    transposed = e.constant(f"{weights['weight'].name}.T", e.np.ascontiguousarray(w.T))
    if "bias" not in weights:
        e.node("MatMul", [e.value(x), transposed], [out])
        return
    product = f"{op.name}.matmul"
    e.node("MatMul", [e.value(x), transposed], [product])
    e.node("Add", [product, e.weight_value(weights["bias"])], [out])


def _rank(e: _Emitter, tensor: str) -> int:
    return len(e.ir.tensors[tensor].shape)


def _axes(e: _Emitter, tensor: str, dims: Any) -> list[int]:
    rank = _rank(e, tensor)
    return sorted(int(d) % rank for d in (dims if isinstance(dims, (list, tuple)) else [dims]))


def _mean(e: _Emitter, op: OpNode) -> None:
    x = _one_input(op)
    if op.attr("dtype") is not None:
        raise NotLowerable("mean with a dtype")
    axes = _axes(e, x, op.attr("dim"))
    keep = bool(op.attr("keepdim"))
    out = e.out(op.outputs[0])
    if keep and _rank(e, x) == 4 and axes == [2, 3]:
        e.node("GlobalAveragePool", [e.value(x)], [out])
        return
    shape = e.constant(f"{op.name}.axes", e.np.array(axes, dtype=e.np.int64))
    e.node("ReduceMean", [e.value(x), shape], [out], keepdims=int(keep))


def _reshape(e: _Emitter, op: OpNode) -> None:
    shape = e.constant(f"{op.name}.shape", e.np.array(op.outputs[0].shape, dtype=e.np.int64))
    e.node("Reshape", [e.value(_one_input(op)), shape], [e.out(op.outputs[0])])


def _transpose(e: _Emitter, op: OpNode) -> None:
    x = _one_input(op)
    rank = _rank(e, x)
    if op.op == "aten.permute.default":
        perm = [int(d) % rank for d in op.attr("dims")]
    else:
        perm = list(range(rank))
        a, b = int(op.attr("dim0")) % rank, int(op.attr("dim1")) % rank
        perm[a], perm[b] = perm[b], perm[a]
    e.node("Transpose", [e.value(x)], [e.out(op.outputs[0])], perm=perm)


def _expand(e: _Emitter, op: OpNode) -> None:
    if len(op.inputs) + len(op.weights) != 1:
        raise NotLowerable("expand of several tensors")
    source = e.value(op.inputs[0]) if op.inputs else e.weight_value(op.weights[0])
    shape = e.constant(f"{op.name}.shape", e.np.array(op.outputs[0].shape, dtype=e.np.int64))
    e.node("Expand", [source, shape], [e.out(op.outputs[0])])


def _cat(e: _Emitter, op: OpNode) -> None:
    if op.weights or not op.inputs:
        raise NotLowerable("concatenation of weights")
    axis = int(op.attr("dim")) % len(op.outputs[0].shape)
    e.node("Concat", [e.value(t) for t in op.inputs], [e.out(op.outputs[0])], axis=axis)


def _select(e: _Emitter, op: OpNode) -> None:
    x = _one_input(op)
    dim = int(op.attr("dim")) % _rank(e, x)
    index = int(op.attr("index")) % e.ir.tensors[x].shape[dim]
    position = e.constant(f"{op.name}.index", e.np.array(index, dtype=e.np.int64))
    e.node("Gather", [e.value(x), position], [e.out(op.outputs[0])], axis=dim)


def _slice(e: _Emitter, op: OpNode) -> None:
    x = _one_input(op)
    dim = int(op.attr("dim", 0)) % _rank(e, x)
    size = e.ir.tensors[x].shape[dim]
    start, end, step = op.attr("start"), op.attr("end"), op.attr("step", 1)
    start = 0 if start is None else max(-size, min(int(start), size))
    end = size if end is None else max(-size, min(int(end), size))
    values = [start, end, dim, int(step)]
    arrays = [
        e.constant(f"{op.name}.{n}", e.np.array([v], dtype=e.np.int64))
        for n, v in zip(("starts", "ends", "axes", "steps"), values, strict=True)
    ]
    e.node("Slice", [e.value(x), *arrays], [e.out(op.outputs[0])])


def _softmax(e: _Emitter, op: OpNode) -> None:
    x = _one_input(op)
    if op.attr("dtype") is not None:
        raise NotLowerable("softmax with a dtype")
    axis = int(op.attr("dim")) % _rank(e, x)
    e.node("Softmax", [e.value(x)], [e.out(op.outputs[0])], axis=axis)


def _layer_norm(e: _Emitter, op: OpNode) -> None:
    x = _one_input(op)
    parts = _present(op, ("weight", "bias"))
    shape = tuple(op.attr("normalized_shape"))
    dtype = e.dtype(op.outputs[0])
    ones = e.np.ones(shape, dtype=dtype)
    scale = (
        e.weight_value(parts["weight"])
        if "weight" in parts
        else e.constant(f"{op.name}.scale", ones)
    )
    inputs = [e.value(x), scale]
    inputs.append(
        e.weight_value(parts["bias"])
        if "bias" in parts
        else e.constant(f"{op.name}.bias", ones * 0)
    )
    e.node(
        "LayerNormalization",
        inputs,
        [e.out(op.outputs[0])],
        axis=-len(shape),
        epsilon=float(op.attr("eps")),
    )


def _embedding(e: _Emitter, op: OpNode) -> None:
    if len(op.weights) != 1 or len(op.inputs) != 1:
        raise NotLowerable("embedding whose table is an activation")
    e.node(
        "Gather",
        [e.weight_value(op.weights[0]), e.value(op.inputs[0])],
        [e.out(op.outputs[0])],
        axis=0,
    )


def _max_pool(e: _Emitter, op: OpNode) -> None:
    x = _one_input(op)
    kernel = [int(k) for k in op.attr("kernel_size")]
    stride = [int(s) for s in op.attr("stride")] or kernel
    padding = [int(p) for p in op.attr("padding")]
    e.node(
        "MaxPool",
        [e.value(x)],
        [e.out(op.outputs[0])],
        kernel_shape=kernel,
        strides=stride,
        pads=padding + padding,
        dilations=[int(d) for d in op.attr("dilation")],
        ceil_mode=int(bool(op.attr("ceil_mode"))),
    )


def _adaptive_avg_pool(e: _Emitter, op: OpNode) -> None:
    if list(op.attr("output_size")) != [1, 1]:
        raise NotLowerable("adaptive average pooling to more than 1x1")
    e.node("GlobalAveragePool", [e.value(_one_input(op))], [e.out(op.outputs[0])])


def _clip(e: _Emitter, op: OpNode) -> None:
    dtype = e.dtype(op.outputs[0])
    low = e.constant(f"{op.name}.min", e.np.array(op.attr("min_val", -1.0), dtype=dtype))
    high = e.constant(f"{op.name}.max", e.np.array(op.attr("max_val", 1.0), dtype=dtype))
    e.node("Clip", [e.value(_one_input(op)), low, high], [e.out(op.outputs[0])])


#: aten overload (as the IR's ``op`` names it) -> emit rule
RULES: dict[str, Callable[[_Emitter, OpNode], None]] = {
    "aten.conv1d.default": _conv,
    "aten.conv2d.default": _conv,
    "aten.batch_norm.default": _batch_norm,
    "aten.relu.default": _unary("Relu"),
    "aten.hardswish.default": _unary("HardSwish"),
    "aten.hardsigmoid.default": _unary("HardSigmoid", alpha=1.0 / 6.0, beta=0.5),
    "aten.sigmoid.default": _unary("Sigmoid"),
    "aten.tanh.default": _unary("Tanh"),
    "aten.hardtanh.default": _clip,
    "aten.silu.default": _silu,
    "aten.gelu.default": _gelu,
    "aten.dropout.default": _alias,
    "aten.clone.default": _alias,
    "aten.contiguous.default": _alias,
    "aten.add.Tensor": _binary("Add", True),
    "aten.mul.Tensor": _binary("Mul", True),
    "aten.sub.Tensor": _binary("Sub", False),
    "aten.div.Tensor": _binary("Div", False),
    "aten.matmul.default": _matmul,
    "aten.linear.default": _linear,
    "aten.mean.dim": _mean,
    "aten.flatten.using_ints": _reshape,
    "aten.reshape.default": _reshape,
    "aten.view.default": _reshape,
    "aten.unsqueeze.default": _reshape,
    "aten.squeeze.dim": _reshape,
    "aten.transpose.int": _transpose,
    "aten.permute.default": _transpose,
    "aten.expand.default": _expand,
    "aten.cat.default": _cat,
    "aten.select.int": _select,
    "aten.slice.Tensor": _slice,
    "aten.softmax.int": _softmax,
    "aten.layer_norm.default": _layer_norm,
    "aten.embedding.default": _embedding,
    "aten.max_pool2d.default": _max_pool,
    "aten.adaptive_avg_pool2d.default": _adaptive_avg_pool,
}


def _value_info(spec: TensorSpec) -> onnx.ValueInfoProto:
    from onnx import helper

    return helper.make_tensor_value_info(spec.name, _elem_type(spec.dtype), list(spec.shape))


def _elem_type(dtype: str) -> int:
    import numpy as np
    from onnx import helper

    return helper.np_dtype_to_tensor_dtype(np.dtype("bool" if dtype == "bool" else dtype))


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_-." else "_" for c in name) or "graph"
