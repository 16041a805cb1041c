"""The NAS-Bench-201 network of a cell as a layer plan, rendered as hwnas's graph IR (cheaply) or as a torch module.

The macro skeleton is NAS-Bench-201's: a 3x3 stem, three stages of five cells
(16, 32, 64 channels) joined by residual reduction blocks, then batch-norm, ReLU,
global pooling and a linear classifier, on a 32x32 input. Each cell keeps only
the edges on an input-output path (:func:`~hwnas.search_core.nb201_cell.on_path`),
as a compiler would; a cell with no such path makes the network a constant.
Building the IR from the plan takes milliseconds where ``torch.export`` takes
seconds; the torch rendering is the reference the tests hold it to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hwnas.ir import GraphIR, OpNode, TensorSpec
from hwnas.search_core.nb201_cell import OUTPUT_NODE, on_path

if TYPE_CHECKING:
    import torch

INPUT = "x"
BATCH = 1


@dataclass(frozen=True)
class Skeleton:
    """The macro network around the cells: NAS-Bench-201's CIFAR-10 defaults."""

    channels: int = 16
    cells_per_stage: int = 5
    resolution: int = 32
    classes: int = 10


@dataclass(frozen=True)
class Layer:
    """One step of the plan: ``kind`` applied to the tensors ``inputs``, giving the tensor ``name``."""

    name: str
    kind: str
    inputs: tuple[str, ...]
    shape: tuple[int, ...]
    channels_in: int = 0
    kernel: int = 0
    stride: int = 1
    padding: int = 0
    count_include_pad: bool = True


class _Planner:
    """Appends layers, naming and shaping their outputs."""

    def __init__(self) -> None:
        self.layers: list[Layer] = []
        self.shapes: dict[str, tuple[int, ...]] = {}

    def add(self, kind: str, inputs: tuple[str, ...], shape: tuple[int, ...], **fields: Any) -> str:
        name = f"{kind}_{len(self.layers)}"
        self.layers.append(Layer(name, kind, inputs, shape, **fields))
        self.shapes[name] = shape
        return name

    def relu_conv_bn(self, x: str, channels_out: int, kernel: int, stride: int) -> str:
        c, h, w = self.shapes[x][1:]
        shape = (BATCH, channels_out, _conv_size(h, kernel, stride), _conv_size(w, kernel, stride))
        x = self.add("relu", (x,), self.shapes[x])
        x = self.add(
            "conv2d", (x,), shape, channels_in=c, kernel=kernel, stride=stride, padding=kernel // 2
        )
        return self.add("batch_norm", (x,), shape)

    def edge(self, op: str, x: str) -> str:
        if op == "skip_connect":
            return x
        if op == "avg_pool_3x3":
            return self.add(
                "avg_pool2d",
                (x,),
                self.shapes[x],
                kernel=3,
                stride=1,
                padding=1,
                count_include_pad=False,
            )
        kernel = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}[op]
        return self.relu_conv_bn(x, self.shapes[x][1], kernel, 1)

    def cell(self, ops: Sequence[str], x: str) -> str:
        live = on_path(ops)
        nodes = {0: x}
        for node in range(1, OUTPUT_NODE + 1):
            total = None
            for edge in (e for e in live if e.target == node):
                value = self.edge(edge.op, nodes[edge.source])
                total = (
                    value if total is None else self.add("add", (total, value), self.shapes[value])
                )
            if total is not None:
                nodes[node] = total
        return nodes[OUTPUT_NODE]

    def reduction(self, x: str, channels_out: int) -> str:
        """NAS-Bench-201's ResNet basic block with stride 2; the shortcut pools, then a 1x1 conv."""
        c, h, w = self.shapes[x][1:]
        a = self.relu_conv_bn(x, channels_out, 3, 2)
        b = self.relu_conv_bn(a, channels_out, 3, 1)
        pooled = self.add("avg_pool2d", (x,), (BATCH, c, h // 2, w // 2), kernel=2, stride=2)
        shortcut = self.add(
            "conv2d", (pooled,), self.shapes[b], channels_in=c, kernel=1, stride=1, padding=0
        )
        return self.add("add", (shortcut, b), self.shapes[b])


def _conv_size(size: int, kernel: int, stride: int) -> int:
    """Output size of a convolution padded by ``kernel // 2`` (NAS-Bench-201's "same" padding)."""
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def network_plan(ops: Sequence[str], skeleton: Skeleton = Skeleton()) -> list[Layer]:
    """The layers of the network built from the cell ``ops`` (six edge operations), in run order."""
    plan = _Planner()
    plan.shapes[INPUT] = (BATCH, 3, skeleton.resolution, skeleton.resolution)
    widths = [skeleton.channels * 2**stage for stage in range(3)]
    if not on_path(ops):
        # the cells output zeros, so the logits are the classifier's bias: nothing else runs
        features = plan.add("zeros", (), (BATCH, widths[-1]))
        plan.add("linear", (features,), (BATCH, skeleton.classes), channels_in=widths[-1])
        return plan.layers
    size = skeleton.resolution
    x = plan.add(
        "conv2d", (INPUT,), (BATCH, widths[0], size, size), channels_in=3, kernel=3, padding=1
    )
    x = plan.add("batch_norm", (x,), plan.shapes[x])
    for stage, width in enumerate(widths):
        if stage:
            x = plan.reduction(x, width)
        for _ in range(skeleton.cells_per_stage):
            x = plan.cell(ops, x)
    x = plan.add("batch_norm", (x,), plan.shapes[x])
    x = plan.add("relu", (x,), plan.shapes[x])
    x = plan.add("adaptive_avg_pool2d", (x,), (BATCH, widths[-1], 1, 1))
    x = plan.add("view", (x,), (BATCH, widths[-1]))
    plan.add("linear", (x,), (BATCH, skeleton.classes), channels_in=widths[-1])
    return plan.layers


# -- the plan as hwnas's graph IR -------------------------------------------------


def network_ir(ops: Sequence[str], skeleton: Skeleton = Skeleton()) -> GraphIR:
    """The graph IR of the network of ``ops``, built straight from the plan (no torch)."""
    layers = network_plan(ops, skeleton)
    specs = {INPUT: TensorSpec(INPUT, (BATCH, 3, skeleton.resolution, skeleton.resolution))}
    nodes = []
    for layer in layers:
        out = TensorSpec(layer.name, layer.shape)
        inputs = tuple(specs[t] for t in layer.inputs)
        weights = _weights(layer)
        params = sum(
            w.numel for w in weights if not w.name.endswith(("running_mean", "running_var"))
        )
        nodes.append(
            OpNode(
                name=layer.name,
                op=_ATEN.get(layer.kind, f"aten.{layer.kind}.default"),
                kind=layer.kind,
                inputs=layer.inputs,
                outputs=(out,),
                weights=weights,
                attrs=_attrs(layer),
                macs=_macs(layer, weights),
                params=params,
                bytes_moved=sum(t.nbytes for t in (*inputs, *weights, out)),
            )
        )
        specs[layer.name] = out
    output = layers[-1].name
    return GraphIR(
        name="nb201/" + "|".join(ops),
        ops=nodes,
        input_specs=[specs[INPUT]],
        output_specs=[TensorSpec("output", specs[output].shape)],
        output_tensors=[output],
        source="nb201-plan",
        weights_digest="untrained",
        metadata={"space": "nb201", "cell": list(ops)},
    )


_ATEN = {"add": "aten.add.Tensor"}


def _weights(layer: Layer) -> tuple[TensorSpec, ...]:
    channels_out = layer.shape[1]
    if layer.kind == "conv2d":
        return (
            TensorSpec(
                f"{layer.name}.weight",
                (channels_out, layer.channels_in, layer.kernel, layer.kernel),
            ),
        )
    if layer.kind == "batch_norm":
        return tuple(
            TensorSpec(f"{layer.name}.{part}", (channels_out,))
            for part in ("weight", "bias", "running_mean", "running_var")
        )
    if layer.kind == "linear":
        return (
            TensorSpec(f"{layer.name}.weight", (layer.shape[1], layer.channels_in)),
            TensorSpec(f"{layer.name}.bias", (layer.shape[1],)),
        )
    return ()


def _attrs(layer: Layer) -> tuple[tuple[str, Any], ...]:
    """The op's arguments as ``torch.export`` records them, so kernel keys match the reference's."""
    pair = (
        (layer.kernel, layer.kernel),
        (layer.padding, layer.padding),
        (layer.stride, layer.stride),
    )
    attrs: dict[str, Any] = {
        "conv2d": {
            "bias": None,
            "dilation": (1, 1),
            "groups": 1,
            "padding": pair[1],
            "stride": pair[2],
        },
        "batch_norm": {"cudnn_enabled": False, "eps": 1e-05, "momentum": 0.1, "training": False},
        "add": {"alpha": 1},
        "avg_pool2d": {
            "ceil_mode": False,
            "count_include_pad": layer.count_include_pad,
            "divisor_override": None,
            "kernel_size": pair[0],
            "padding": pair[1],
            "stride": pair[2],
        },
        "adaptive_avg_pool2d": {"output_size": (1, 1)},
        "view": {"size": (BATCH, -1)},
        "zeros": {
            "device": "cpu",
            "dtype": "torch.float32",
            "layout": None,
            "pin_memory": False,
            "size": layer.shape,
        },
    }.get(layer.kind, {})
    return tuple(sorted(attrs.items()))


def _macs(layer: Layer, weights: tuple[TensorSpec, ...]) -> int:
    from hwnas.ir import costs

    if layer.kind == "conv2d":
        return costs.conv_macs(layer.shape, weights[0].shape)
    if layer.kind == "linear":
        return costs.linear_macs(layer.shape, weights[0].shape)
    return 0


# -- the plan as a torch module (the reference) --------------------------------------


def network_module(ops: Sequence[str], skeleton: Skeleton = Skeleton()) -> torch.nn.Module:
    """The same network as a torch module (random weights, eval mode), run layer by layer from the plan."""
    import torch

    layers = network_plan(ops, skeleton)

    class NB201Network(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = layers
            self.parts = torch.nn.ModuleDict(
                {layer.name: module for layer in layers if (module := _module(layer)) is not None}
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            values = {INPUT: x}
            for layer in self.layers:
                values[layer.name] = self._run(layer, [values[t] for t in layer.inputs], x)
            return values[self.layers[-1].name]

        def _run(self, layer: Layer, inputs: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            if layer.name in self.parts:
                return self.parts[layer.name](*inputs)
            if layer.kind == "relu":
                return torch.relu(inputs[0])
            if layer.kind == "add":
                return inputs[0] + inputs[1]
            if layer.kind == "view":
                return inputs[0].view(inputs[0].size(0), -1)
            if layer.kind == "zeros":
                return torch.zeros(layer.shape, dtype=x.dtype)
            raise AssertionError(f"no torch rendering of {layer.kind}")

    return NB201Network().eval()


def _module(layer: Layer) -> torch.nn.Module | None:
    import torch

    if layer.kind == "conv2d":
        return torch.nn.Conv2d(
            layer.channels_in,
            layer.shape[1],
            layer.kernel,
            stride=layer.stride,
            padding=layer.padding,
            bias=False,
        )
    if layer.kind == "batch_norm":
        return torch.nn.BatchNorm2d(layer.shape[1])
    if layer.kind == "avg_pool2d":
        return torch.nn.AvgPool2d(
            layer.kernel,
            stride=layer.stride,
            padding=layer.padding,
            count_include_pad=layer.count_include_pad,
        )
    if layer.kind == "adaptive_avg_pool2d":
        return torch.nn.AdaptiveAvgPool2d(1)
    if layer.kind == "linear":
        return torch.nn.Linear(layer.channels_in, layer.shape[1])
    return None


def example_input(skeleton: Skeleton = Skeleton()) -> torch.Tensor:
    import torch

    return torch.randn(BATCH, 3, skeleton.resolution, skeleton.resolution)
