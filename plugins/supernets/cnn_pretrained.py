"""Wrapping a user's static torch CNN as an ``elastic-cnn`` supernet, and ordering its channels by importance.

The model is traced with ``torch.fx``; a plain chain of supported layers becomes
layer specs, and anything else is refused naming the layer.
"""

from __future__ import annotations

import importlib
import importlib.util
import operator
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas import ConfigError, PretrainedModel, sha256_file
from hwnas_plugins.supernets.cnn_modules import LayerSpec, flatten_positions

if TYPE_CHECKING:
    from hwnas_plugins.supernets.cnn import ElasticCNN

_ACTIVATION_MODULES: dict[type[nn.Module], str] = {
    nn.ReLU: "relu",
    nn.ReLU6: "relu6",
    nn.Hardswish: "hardswish",
    nn.SiLU: "silu",
    nn.GELU: "gelu",
}
_ACTIVATION_FUNCTIONS: dict[Any, str] = {
    torch.relu: "relu",
    F.relu: "relu",
    F.relu6: "relu6",
    F.hardswish: "hardswish",
    F.silu: "silu",
    F.gelu: "gelu",
}
_SKIPPED = (nn.Dropout, nn.Dropout2d, nn.Identity)
SUPPORTED = (
    "Conv2d (square kernel, dilation 1, groups 1 or depthwise), BatchNorm2d, ReLU/ReLU6/Hardswish/SiLU/GELU, "
    "MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, Flatten / torch.flatten(x, 1), Linear, Dropout, Identity, "
    "in one chain without branches"
)


def load_user_module(source: str, weights: str | None) -> tuple[nn.Module, dict[str, Any]]:
    """The module ``file.py:Name`` or ``package.module:Name`` names (an instance, or a class/factory called without arguments)."""
    where, sep, attribute = source.rpartition(":")
    if not sep or not where or not attribute:
        raise ConfigError(
            f"--from-pretrained {source!r}: expected FILE.py:NAME or package.module:NAME",
            hint="NAME is a torch module instance, class or factory taking no arguments",
        )
    if where.endswith(".py"):
        path = Path(where).expanduser()
        if not path.is_file():
            raise ConfigError(f"--from-pretrained: {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"hwnas_user_model_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        namespace = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = namespace  # dataclasses and pickling look modules up by name
        spec.loader.exec_module(namespace)
    else:
        try:
            namespace = importlib.import_module(where)
        except ImportError as exc:
            raise ConfigError(f"--from-pretrained: cannot import {where!r} ({exc})") from None
    try:
        found = getattr(namespace, attribute)
    except AttributeError:
        raise ConfigError(f"--from-pretrained: {where} has no {attribute!r}") from None
    model = found if isinstance(found, nn.Module) else found()
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"--from-pretrained {source}: gave a {type(model).__name__}, not a torch module"
        )
    described: dict[str, Any] = {"kind": "torch-module", "source": source}
    if weights is not None:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise ConfigError(f"--pretrained-weights {path} does not exist")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ConfigError(
                f"--pretrained-weights {path}: not a torch state dict ({exc})"
            ) from None
        try:
            model.load_state_dict(
                state.get("state_dict", state) if isinstance(state, dict) else state
            )
        except RuntimeError as exc:
            raise ConfigError(
                f"--pretrained-weights {path} does not fit {source}: {str(exc).splitlines()[0]}"
            ) from None
        described.update(weights=path.name, weights_sha256=sha256_file(path))
    return model.eval(), described


def trace_chain(model: nn.Module) -> list[tuple[LayerSpec, nn.Module | None]]:
    """The model's layers as specs (with the torch layer holding their weights), via ``torch.fx``."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception as exc:
        raise ConfigError(
            f"elastic-cnn cannot trace {type(model).__name__} with torch.fx: {str(exc).splitlines()[0]}",
            hint=f"elastic-cnn wraps plain CNNs: {SUPPORTED}",
        ) from None
    modules = dict(model.named_modules())
    chain: list[tuple[LayerSpec, nn.Module | None]] = []
    previous = None
    for node in graph.nodes:
        if node.op == "placeholder":
            if previous is not None:
                raise _unsupported(node.name, "a second input")
            previous = node
            continue
        if node.op == "output":
            break
        if len(previous.users) != 1:
            raise ConfigError(
                f"elastic-cnn: the output of {previous.name!r} feeds {len(previous.users)} layers "
                f"({', '.join(user.name for user in previous.users)}): the network branches",
                hint=f"elastic-cnn wraps plain chains: {SUPPORTED}",
            )
        if list(node.all_input_nodes) != [previous]:
            raise ConfigError(
                f"elastic-cnn: layer {node.name!r} takes {len(node.all_input_nodes)} inputs: the network branches",
                hint=f"elastic-cnn wraps plain chains: {SUPPORTED}",
            )
        spec = _layer_spec(node, modules)
        if spec is not None:
            chain.append(spec)
        previous = node
    if not chain:
        raise ConfigError(f"elastic-cnn: {type(model).__name__} has no layers")
    return chain


def _layer_spec(
    node: Any, modules: Mapping[str, nn.Module]
) -> tuple[LayerSpec, nn.Module | None] | None:
    if node.op == "call_module":
        layer = modules[node.target]
        if isinstance(layer, _SKIPPED):
            return None
        return _module_spec(node.target, layer), layer
    if node.op == "call_function" and node.target in _ACTIVATION_FUNCTIONS:
        return LayerSpec("act", name=_ACTIVATION_FUNCTIONS[node.target]), None
    if node.op == "call_function" and node.target is F.dropout:
        return None
    if node.op == "call_function" and node.target is torch.flatten:
        if tuple(node.args[1:]) + tuple(node.kwargs.values()) in ((1,), ()):
            return LayerSpec("flatten"), None
    if node.op == "call_method" and node.target in ("relu", "flatten"):
        if node.target == "relu":
            return LayerSpec("act", name="relu"), None
        if tuple(node.args[1:]) == (1,):
            return LayerSpec("flatten"), None
    what = (
        node.target
        if isinstance(node.target, str)
        else getattr(node.target, "__name__", str(node.target))
    )
    if node.target in (operator.add, torch.add, torch.cat):
        raise _unsupported(node.name, f"{what} (a branch)")
    raise _unsupported(node.name, f"{node.op} {what}")


def _module_spec(name: str, layer: nn.Module) -> LayerSpec:
    def spec(kind: str, **values: int) -> LayerSpec:
        return LayerSpec(kind, tuple((k, int(v)) for k, v in values.items()))

    if isinstance(layer, nn.Conv2d):
        kernel, stride, padding = layer.kernel_size, layer.stride, layer.padding
        depthwise = layer.groups == layer.in_channels == layer.out_channels
        problems = [
            text
            for bad, text in (
                (kernel[0] != kernel[1], f"kernel {kernel} is not square"),
                (stride[0] != stride[1], f"stride {stride} differs by axis"),
                (isinstance(padding, str) or padding[0] != padding[1], f"padding {padding!r}"),
                (layer.dilation != (1, 1), f"dilation {layer.dilation}"),
                (
                    layer.groups != 1 and not depthwise,
                    f"groups={layer.groups} (only 1 or depthwise)",
                ),
                (layer.padding_mode != "zeros", f"padding_mode {layer.padding_mode!r}"),
            )
            if bad
        ]
        if problems:
            raise _unsupported(name, f"Conv2d with {', '.join(problems)}")
        return spec(
            "conv",
            **{"in": layer.in_channels},
            out=layer.out_channels,
            kernel=kernel[0],
            stride=stride[0],
            padding=padding[0],
            groups=layer.groups,
            bias=layer.bias is not None,
        )
    if isinstance(layer, nn.BatchNorm2d):
        if not (layer.affine and layer.track_running_stats):
            raise _unsupported(name, "BatchNorm2d without affine weights or running statistics")
        return spec("bn", features=layer.num_features)
    for kind, activation in _ACTIVATION_MODULES.items():
        if type(layer) is kind:
            if isinstance(layer, nn.GELU) and layer.approximate != "none":
                raise _unsupported(name, "GELU(approximate='tanh')")
            return LayerSpec("act", name=activation)
    if isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)):
        sizes = [layer.kernel_size, layer.stride, layer.padding]
        if (
            any(not isinstance(v, int) for v in sizes)
            or layer.ceil_mode
            or (isinstance(layer, nn.MaxPool2d) and layer.dilation != 1)
        ):
            raise _unsupported(
                name, f"{type(layer).__name__} with non-square sizes, ceil_mode or dilation"
            )
        if isinstance(layer, nn.AvgPool2d) and not layer.count_include_pad:
            raise _unsupported(name, "AvgPool2d(count_include_pad=False)")
        kind = "maxpool" if isinstance(layer, nn.MaxPool2d) else "avgpool"
        return spec(kind, kernel=sizes[0], stride=sizes[1], padding=sizes[2])
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        size = layer.output_size
        size = size if isinstance(size, int) else size[0] if size[0] == size[1] else None
        if size is None:
            raise _unsupported(name, f"AdaptiveAvgPool2d({layer.output_size})")
        return spec("adaptiveavgpool", size=size)
    if isinstance(layer, nn.Flatten):
        if (layer.start_dim, layer.end_dim) != (1, -1):
            raise _unsupported(name, f"Flatten({layer.start_dim}, {layer.end_dim})")
        return LayerSpec("flatten")
    if isinstance(layer, nn.Linear):
        return spec(
            "linear",
            **{"in": layer.in_features},
            out=layer.out_features,
            bias=layer.bias is not None,
        )
    raise _unsupported(name, type(layer).__name__)


def _unsupported(name: str, what: str) -> ConfigError:
    return ConfigError(
        f"elastic-cnn cannot slice layer {name!r}: {what}", hint=f"supported: {SUPPORTED}"
    )


def load_pretrained_cnn(
    cls: type[ElasticCNN], source: str, weights: str | None, overrides: Mapping[str, str]
) -> PretrainedModel:
    """An ``elastic-cnn`` whose largest subnet is the user's CNN, weights copied layer by layer."""

    model, described = load_user_module(source, weights)
    chain = trace_chain(model)
    specs = [spec for spec, _ in chain]
    first = next((s for s in specs if s.kind in ("conv", "linear")), None)
    if first is None or first.kind != "conv":
        raise ConfigError(
            f"elastic-cnn: {source} does not start with a Conv2d", hint=f"supported: {SUPPORTED}"
        )
    settings = dict(overrides)
    settings.setdefault("in_channels", str(first["in"]))
    supernet = cls.from_settings(cls.settings_class(layers=tuple(str(s) for s in specs)), settings)
    module = supernet.build()
    state: dict[str, torch.Tensor] = {}
    for index, (_, layer) in enumerate(chain):
        if layer is not None:
            for key, value in layer.state_dict().items():
                state[f"layers.{index}.{key}"] = value
    supernet.load_state_dict(module, _with_transforms(module, state), where=f"weights of {source}")
    module.eval()
    return PretrainedModel(
        supernet=supernet,
        module=module,
        task="classification",
        source=described | {"layers": len(specs)},
        original=lambda x: model(x),
    )


def _with_transforms(module: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the elastic layers' own parameters that a static layer has none of (kernel transforms stay identity)."""
    own = module.state_dict()
    return {**{k: v for k, v in own.items() if k not in state}, **state}


# -- importance ----------------------------------------------------------------------------


def sort_cnn_by_importance(
    supernet: ElasticCNN, module: nn.Module, batches: list[torch.Tensor]
) -> dict[str, Any]:
    """Order each elastic layer's channels by mean |activation| at their consumer times the consumer's weight norm.

    The channels move together through the norms, depthwise convs and pools
    between producer and consumer, so the largest subnet computes the same.
    """
    specs = supernet.specs
    supernet.set_active(module, supernet.space.largest())
    summary: dict[str, Any] = {}
    for producer in supernet.elastic_layers():
        consumer = next(
            i
            for i in range(producer + 1, len(specs))
            if specs[i].kind == "linear" or (specs[i].kind == "conv" and not specs[i].depthwise)
        )
        positions = 1
        if any(specs[i].kind == "flatten" for i in range(producer + 1, consumer)):
            flatten = next(i for i in range(producer + 1, consumer) if specs[i].kind == "flatten")
            positions = flatten_positions(specs, flatten, supernet.settings.in_channels)
        score = _channel_scores(supernet, module, batches, consumer, positions)
        order = torch.argsort(score, descending=True)
        _permute(module, specs, producer, consumer, order, positions)
        smallest = min(supernet.space.gene(f"l{producer}.width").choices)
        summary[str(producer)] = {
            "kept_share_smallest": round(
                float(score[order[: int(smallest)]].sum() / score.sum()), 4
            )
        }
    return summary


def _channel_scores(
    supernet: ElasticCNN,
    module: nn.Module,
    batches: list[torch.Tensor],
    consumer: int,
    positions: int,
) -> torch.Tensor:
    totals: list[torch.Tensor] = []
    layer = module.layers[consumer]

    def hook(_: nn.Module, inputs: tuple[torch.Tensor, ...], output: Any) -> None:
        x = inputs[0].abs()
        per_channel = (
            x.mean(dim=(0, 2, 3))
            if x.dim() == 4
            else x.mean(dim=0).reshape(-1, positions).mean(dim=1)
        )
        totals.append(per_channel)

    handle = layer.register_forward_hook(hook)
    try:
        with torch.no_grad():
            for batch in batches:
                module(supernet.adapt_input(batch, supernet.space.largest()))
    finally:
        handle.remove()
    activation = torch.stack(totals).mean(dim=0)
    weight = layer.weight.detach()
    if weight.dim() == 4:
        norm = weight.abs().sum(dim=(0, 2, 3))
    else:
        norm = weight.abs().sum(dim=0).reshape(-1, positions).sum(dim=1)
    return activation * norm


def _permute(
    module: nn.Module,
    specs: tuple[LayerSpec, ...],
    producer: int,
    consumer: int,
    order: torch.Tensor,
    positions: int,
) -> None:
    with torch.no_grad():
        head = module.layers[producer]
        head.weight.copy_(head.weight[order])
        if head.bias is not None:
            head.bias.copy_(head.bias[order])
        for index in range(producer + 1, consumer):
            layer = module.layers[index]
            if specs[index].kind == "bn":
                for tensor in (layer.weight, layer.bias, layer.running_mean, layer.running_var):
                    tensor.copy_(tensor[order])
            elif specs[index].kind == "conv":  # depthwise: one filter per channel
                layer.weight.copy_(layer.weight[order])
                if layer.bias is not None:
                    layer.bias.copy_(layer.bias[order])
        tail = module.layers[consumer]
        if tail.weight.dim() == 4:
            tail.weight.copy_(tail.weight[:, order])
        else:
            columns = (order[:, None] * positions + torch.arange(positions)).reshape(-1)
            tail.weight.copy_(tail.weight[:, columns])
