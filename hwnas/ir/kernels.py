"""Fused kernel groups of an IR (conv/linear + batch-norm + activation, as nn-Meter detects kernels) and their keys.

A group's ``key`` names op types and shapes only, so latency tables keyed on
it are shared by every subnet containing that kernel; :func:`kernel_module`
cuts one group out of the exported torch graph so it can be measured alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError
from hwnas.ir.nodes import OpNode, TensorSpec, to_jsonable

if TYPE_CHECKING:
    import torch

    from hwnas.ir.graph import GraphIR

# ops that start a fused kernel: the compute-heavy ones
ANCHOR_KINDS = frozenset({"conv1d", "conv2d", "conv3d", "linear", "matmul"})
NORM_KINDS = frozenset({"batch_norm"})
ACTIVATION_KINDS = frozenset(
    {
        "relu",
        "relu6",
        "hardtanh",
        "hardswish",
        "hardsigmoid",
        "sigmoid",
        "silu",
        "gelu",
        "tanh",
        "leaky_relu",
    }
)
# attributes that do not change what a kernel computes at inference
_IGNORED_ATTRS = frozenset({"momentum", "cudnn_enabled", "training"})


@dataclass(frozen=True)
class KernelGroup:
    """Ops run as one kernel; ``inputs`` and ``outputs`` are the activations crossing its boundary."""

    name: str
    ops: tuple[str, ...]
    kinds: tuple[str, ...]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    weights: tuple[TensorSpec, ...]
    attrs: tuple[tuple[str, Any], ...]
    macs: int
    params: int
    bytes_moved: int

    @property
    def kind(self) -> str:
        """``conv2d+batch_norm+hardswish`` style name of what the kernel computes."""
        return "+".join(self.kinds)

    @property
    def key(self) -> str:
        """Stable identity of the kernel for latency tables: op types, attributes and shapes, no names."""
        attrs = ",".join(f"{k}={_compact(v)}" for k, v in self.attrs)
        weights = ",".join("x".join(map(str, w.shape)) for w in self.weights)
        ins = ",".join(_shape(t) for t in self.inputs)
        outs = ",".join(_shape(t) for t in self.outputs)
        dtypes = ",".join(sorted({t.dtype for t in (*self.inputs, *self.outputs)}))
        return f"{self.kind}({attrs};w={weights}) {ins}->{outs} {dtypes}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "key": self.key,
            "ops": list(self.ops),
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "macs": self.macs,
            "params": self.params,
            "bytes_moved": self.bytes_moved,
        }


def _shape(spec: TensorSpec) -> str:
    return "x".join(map(str, spec.shape)) or "scalar"


def _compact(value: Any) -> str:
    value = to_jsonable(value)
    if isinstance(value, list):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    return str(value)


def group_kernels(ir: GraphIR) -> tuple[KernelGroup, ...]:
    """Greedy fusion in op order: an anchor takes a following norm, then an activation, when it is their only reader."""
    readers: dict[str, list[OpNode]] = {}
    for op in ir.ops:
        for tensor in op.inputs:
            readers.setdefault(tensor, []).append(op)
    graph_outputs = set(ir.output_tensors)

    def sole_reader(op: OpNode) -> OpNode | None:
        if len(op.outputs) != 1 or op.outputs[0].name in graph_outputs:
            return None
        found = readers.get(op.outputs[0].name, [])
        return found[0] if len(found) == 1 else None

    taken: set[str] = set()
    groups: list[KernelGroup] = []
    for op in ir.ops:
        if op.name in taken:
            continue
        members = [op]
        if op.kind in ANCHOR_KINDS:
            nxt = sole_reader(op)
            if nxt is not None and nxt.kind in NORM_KINDS:
                members.append(nxt)
                nxt = sole_reader(nxt)
            if nxt is not None and nxt.kind in ACTIVATION_KINDS:
                members.append(nxt)
        taken.update(m.name for m in members)
        groups.append(_group(members, readers, graph_outputs, ir.tensors))
    return tuple(groups)


def _group(
    members: list[OpNode],
    readers: dict[str, list[OpNode]],
    graph_outputs: set[str],
    tensors: dict[str, TensorSpec],
) -> KernelGroup:
    names = {m.name for m in members}
    produced = {spec.name for m in members for spec in m.outputs}
    inputs: dict[str, TensorSpec] = {}
    specs = {spec.name: spec for m in members for spec in m.outputs}
    outputs: list[TensorSpec] = []
    for m in members:
        for tensor in m.inputs:
            if tensor not in produced and tensor not in inputs:
                inputs[tensor] = tensors[tensor]
        for spec in m.outputs:
            outside = any(r.name not in names for r in readers.get(spec.name, []))
            if outside or spec.name in graph_outputs:
                outputs.append(specs[spec.name])
    anchor = members[0]
    attrs = tuple((k, v) for k, v in anchor.attrs if k not in _IGNORED_ATTRS)
    weights = tuple(w for w in anchor.weights if len(w.shape) > 1) or anchor.weights
    return KernelGroup(
        name=anchor.name,
        ops=tuple(m.name for m in members),
        kinds=tuple(m.kind for m in members),
        inputs=tuple(inputs.values()),
        outputs=tuple(outputs),
        weights=weights,
        attrs=attrs,
        macs=sum(m.macs for m in members),
        params=sum(m.params for m in members),
        bytes_moved=sum(t.nbytes for t in inputs.values())
        + sum(t.nbytes for t in outputs)
        + sum(w.nbytes for m in members for w in m.weights),
    )


def kernel_module(
    ir: GraphIR, group: KernelGroup, *, seed: int = 0
) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """One kernel group as a standalone torch module (the real weights) and random inputs of its shapes.

    The module takes ``group.inputs`` in order and returns ``group.outputs``
    (one tensor, or a tuple when there are several).
    """
    import torch
    import torch.fx as fx

    if ir.graph_module is None:
        raise ConfigError(
            f"IR {ir.name!r} ({ir.source}) has no torch graph to cut kernel {group.name!r} from",
            hint="build the IR with GraphIR.from_module or GraphIR.from_subnet",
        )
    by_tensor = _fx_nodes_by_tensor(ir)
    members = [by_tensor[name] for name in group.ops]
    inside = {node.name for node in members}
    graph = fx.Graph()
    env: dict[str, fx.Node] = {}
    for index, spec in enumerate(group.inputs):
        source = by_tensor[spec.name]
        env[source.name] = graph.placeholder(f"x{index}")
        env[source.name].meta = dict(source.meta)
    for node in members:
        for arg in node.all_input_nodes:
            if arg.name in env or arg.name in inside:
                continue
            if arg.op != "get_attr":
                raise ConfigError(
                    f"kernel {group.name!r}: op {node.name!r} reads {arg.name!r}, not among its inputs"
                )
            env[arg.name] = graph.get_attr(arg.target)
        env[node.name] = graph.node_copy(node, lambda n: env[n.name])
    results = [env[by_tensor[spec.name].name] for spec in group.outputs]
    graph.output(results[0] if len(results) == 1 else tuple(results))
    module = fx.GraphModule(ir.graph_module, graph, class_name=f"Kernel_{group.name}")
    generator = torch.Generator().manual_seed(seed)
    inputs = []
    for spec in group.inputs:
        dtype = getattr(torch, spec.dtype)
        if dtype.is_floating_point:
            inputs.append(torch.randn(spec.shape, dtype=dtype, generator=generator))
        else:
            inputs.append(torch.zeros(spec.shape, dtype=dtype))
    return module.eval(), tuple(inputs)


def _fx_nodes_by_tensor(ir: GraphIR) -> dict[str, Any]:
    """IR tensor and op names -> nodes of the unlifted fx graph (graph inputs by position, ``op.i`` via getitem)."""
    import operator

    nodes: dict[str, Any] = {}
    placeholders = [n for n in ir.graph_module.graph.nodes if n.op == "placeholder"]
    for spec, node in zip(ir.input_specs, placeholders, strict=True):
        nodes[spec.name] = node
    for node in ir.graph_module.graph.nodes:
        if node.op != "call_function":
            continue
        if node.target is operator.getitem:
            source, index = node.args
            nodes[f"{source.name}.{index}"] = node
        else:
            nodes[node.name] = node
    return nodes
