"""Turning a static torch module into IR ops: ``torch.export``, then one :class:`OpNode` per aten call.

The graph walked is the exported program's; its op node names are kept by
its unlifted module, which kernel groups are later cut out of.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from hwnas.errors import ConfigError
from hwnas.ir import costs
from hwnas.ir.nodes import OpNode, TensorSpec, freeze

if TYPE_CHECKING:
    import torch
    from torch.export import ExportedProgram
    from torch.fx import Node

# aten schema name -> IR kind, where the schema name is not already what we want
_KIND_ALIASES: dict[str, str] = {
    "_native_batch_norm_legit_no_training": "batch_norm",
    "native_batch_norm": "batch_norm",
    "mm": "matmul",
    "bmm": "matmul",
    "addmm": "matmul",
    "baddbmm": "matmul",
    "scaled_dot_product_attention": "attention",
    "native_layer_norm": "layer_norm",
    "_softmax": "softmax",
    "relu_": "relu",
    "hardswish_": "hardswish",
}


@dataclass(frozen=True)
class TorchTrace:
    """What tracing a module gave: the IR ops, and the exported program or the recorded calls they came from."""

    exported: ExportedProgram | None
    ops: tuple[OpNode, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    output_tensors: tuple[str, ...]
    #: :class:`~hwnas.ir.from_forward.RecordedCall` of each op, for an IR built by recording a forward pass
    calls: tuple[Any, ...] = ()


def export_module(
    module: torch.nn.Module, example_inputs: Sequence[torch.Tensor]
) -> ExportedProgram:
    """``torch.export`` a module in eval mode; failures become :class:`ConfigError` naming the module."""
    import torch
    import torch.fx.config as fx_config

    module.eval()
    # Per-node Python stack traces cost a third of export time and the IR never reads them.
    previous = fx_config.do_not_emit_stack_traces
    fx_config.do_not_emit_stack_traces = True
    try:
        with torch.no_grad():
            return torch.export.export(module, tuple(example_inputs))
    except Exception as exc:
        raise ConfigError(
            f"torch.export failed on {type(module).__name__}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="the IR needs a static module (no data-dependent control flow); extract a subnet first",
        ) from exc
    finally:
        fx_config.do_not_emit_stack_traces = previous


def trace(module: torch.nn.Module, example_inputs: Sequence[torch.Tensor]) -> TorchTrace:
    return _walk(export_module(module, example_inputs))


def dtype_name(dtype: Any) -> str:
    return str(dtype).removeprefix("torch.")


def output_specs(name: str, value: Any) -> tuple[TensorSpec, ...]:
    """The tensor(s) a node produces; multi-output ops name theirs ``node.i``."""
    if isinstance(value, (tuple, list)):
        return tuple(
            TensorSpec(f"{name}.{i}", tuple(int(d) for d in v.shape), dtype_name(v.dtype))
            for i, v in enumerate(value)
            if hasattr(v, "shape")
        )
    if hasattr(value, "shape"):
        return (TensorSpec(name, tuple(int(d) for d in value.shape), dtype_name(value.dtype)),)
    return ()


def _walk(exported: ExportedProgram) -> TorchTrace:
    signature = exported.graph_signature
    parameter_names = set(signature.inputs_to_parameters.values())
    state_names = {
        **signature.inputs_to_parameters,
        **signature.inputs_to_buffers,
        **signature.inputs_to_lifted_tensor_constants,
    }
    user_inputs = set(signature.user_inputs)
    tensors: dict[str, TensorSpec] = {}  # fx node name (or "name.i") -> the tensor it is
    weights: dict[str, TensorSpec] = {}  # placeholder name -> the state-dict tensor it lifts
    inputs: list[TensorSpec] = []
    ops: list[OpNode] = []
    seen_params: set[str] = set()
    output_tensors: tuple[str, ...] = ()

    for node in exported.graph.nodes:
        if node.op == "placeholder":
            value = node.meta.get("val")
            if node.name in state_names:
                target = state_names[node.name]
                weights[node.name] = TensorSpec(
                    target, tuple(int(d) for d in value.shape), dtype_name(value.dtype)
                )
                continue
            if node.name not in user_inputs or not hasattr(value, "shape"):
                raise ConfigError(
                    f"graph input {node.name!r} is not a tensor; the IR needs tensor inputs"
                )
            spec = TensorSpec(
                node.name, tuple(int(d) for d in value.shape), dtype_name(value.dtype)
            )
            tensors[node.name] = spec
            inputs.append(spec)
        elif node.op == "call_function":
            if node.target is operator.getitem:
                source, index = node.args
                if f"{source.name}.{index}" in tensors:
                    tensors[node.name] = tensors[f"{source.name}.{index}"]
                continue
            op = _op_node(node, tensors, weights, parameter_names, seen_params)
            for spec in op.outputs:
                tensors[spec.name] = spec
            if len(op.outputs) == 1:
                tensors[node.name] = op.outputs[0]
            ops.append(op)
        elif node.op == "output":
            leaves = node.args[0]
            leaves = leaves if isinstance(leaves, (tuple, list)) else (leaves,)
            output_tensors = tuple(tensors[leaf.name].name for leaf in leaves if leaf is not None)
    by_name = {spec.name: spec for spec in tensors.values()}
    return TorchTrace(
        exported=exported,
        ops=tuple(ops),
        inputs=tuple(inputs),
        outputs=graph_outputs([by_name[t] for t in output_tensors]),
        output_tensors=output_tensors,
    )


def graph_outputs(tensors: Sequence[TensorSpec]) -> tuple[TensorSpec, ...]:
    """The graph's output specs: named ``output`` (one) or ``output_0``, ``output_1``... (several)."""
    names = ["output"] if len(tensors) == 1 else [f"output_{i}" for i in range(len(tensors))]
    return tuple(
        TensorSpec(label, t.shape, t.dtype) for label, t in zip(names, tensors, strict=True)
    )


def _op_node(
    node: Node,
    tensors: dict[str, TensorSpec],
    weights: dict[str, TensorSpec],
    parameter_names: set[str],
    seen_params: set[str],
) -> OpNode:
    from torch.fx import Node

    def tensor_of(value: Any) -> tuple[bool, TensorSpec] | None:
        if not isinstance(value, Node):
            return None
        if value.name in weights:
            return True, weights[value.name]
        if value.name in tensors:
            return False, tensors[value.name]
        return None

    stack = node.meta.get("nn_module_stack") or {}
    return op_node(
        node.name,
        node.target,
        node.args,
        node.kwargs,
        tensor_of,
        output_specs(node.name, node.meta.get("val")),
        str(list(stack.values())[-1][0]) if stack else "",
        parameter_names,
        seen_params,
    )


def op_node(
    name: str,
    target: Any,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    tensor_of: Callable[[Any], tuple[bool, TensorSpec] | None],
    outputs: tuple[TensorSpec, ...],
    module: str,
    parameter_names: set[str],
    seen_params: set[str],
) -> OpNode:
    """One aten call as an :class:`OpNode`: arguments bound by the op's schema, tensors split from attributes.

    ``tensor_of(value)`` says whether an argument is a tensor: ``(True, spec)``
    for a weight (parameter, buffer or constant), ``(False, spec)`` for an
    activation, ``None`` for anything else (which becomes an attribute).
    ``seen_params`` collects parameters already counted, so each counts once.
    """
    schema = _schemas.get(target)
    if schema is None and hasattr(target, "_schema"):
        schema = _schemas[target] = _Schema.of(target)
    if schema is not None:
        raw, arg_names, defaults, op_name = schema
    else:
        raw = getattr(target, "__name__", str(target))
        arg_names = [f"arg{i}" for i in range(len(args))]
        defaults = {}
        op_name = raw
    bound: dict[str, Any] = dict(zip(arg_names, args, strict=False))
    bound.update(kwargs)

    activations: list[TensorSpec] = []
    read: list[TensorSpec] = []
    attrs: dict[str, Any] = {}
    by_role: dict[str, TensorSpec] = {}
    for arg in arg_names:
        if arg not in bound:
            if arg in defaults:
                attrs[arg] = _plain(defaults[arg])
            continue
        value = bound[arg]
        items = value if isinstance(value, (list, tuple)) else (value,)
        found = [tensor_of(v) for v in items]
        if any(f is not None for f in found):
            for f in found:
                if f is None:
                    continue
                is_weight, spec = f
                (read if is_weight else activations).append(spec)
                by_role.setdefault(arg, spec)
        else:
            attrs[arg] = _plain(value)

    kind = _kind(raw, attrs, by_role)
    params = 0
    for spec in read:
        if spec.name in parameter_names and spec.name not in seen_params:
            seen_params.add(spec.name)
            params += spec.numel
    return OpNode(
        name=name,
        op=op_name,
        kind=kind,
        inputs=tuple(t.name for t in activations),
        outputs=outputs,
        weights=tuple(read),
        attrs=tuple(sorted((k, freeze(v)) for k, v in attrs.items())),
        macs=_macs(kind, raw, by_role, outputs),
        params=params,
        bytes_moved=sum(t.nbytes for t in activations)
        + sum(t.nbytes for t in read)
        + sum(t.nbytes for t in outputs),
        module=module,
    )


class _Schema(NamedTuple):
    """What :func:`op_node` reads from an op's schema (parsing it costs more than the rest of a node)."""

    raw: str
    arg_names: list[str]
    defaults: dict[str, Any]
    op_name: str

    @classmethod
    def of(cls, target: Any) -> _Schema:
        schema = target._schema
        return cls(
            schema.name.split("::")[-1],
            [a.name for a in schema.arguments],
            {a.name: a.default_value for a in schema.arguments if a.has_default_value()},
            str(target),
        )


_schemas: dict[Any, _Schema] = {}


def _plain(value: Any) -> Any:
    """A JSON-ready form of a non-tensor argument (dtypes, devices and enums become strings)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return str(value)


def _kind(raw: str, attrs: dict[str, Any], by_role: dict[str, TensorSpec]) -> str:
    if raw in ("conv2d", "conv1d", "conv3d", "convolution", "_convolution"):
        weight = by_role.get("weight")
        return f"conv{len(weight.shape) - 2}d" if weight is not None else "conv2d"
    if raw == "hardtanh" and attrs.get("min_val") == 0 and attrs.get("max_val") == 6:
        return "relu6"
    return _KIND_ALIASES.get(raw, raw.lstrip("_"))


def _macs(
    kind: str, raw: str, by_role: dict[str, TensorSpec], outputs: tuple[TensorSpec, ...]
) -> int:
    if kind not in costs.MAC_KINDS or not outputs:
        return 0
    out = outputs[0].shape
    if kind.startswith("conv"):
        return costs.conv_macs(out, by_role["weight"].shape)
    if kind == "linear":
        return costs.linear_macs(out, by_role["weight"].shape)
    if kind == "attention":
        return costs.attention_macs(
            by_role["query"].shape, by_role["key"].shape, by_role["value"].shape
        )
    left = (
        by_role.get("self")
        if raw != "addmm" and raw != "baddbmm"
        else by_role.get("mat1", by_role.get("batch1"))
    )
    return costs.matmul_macs(out, left.shape if left is not None else ())
