"""Torch modules of the ``elastic-cnn`` supernet: a plain chain of convs, norms, pools and linears with elastic widths.

Layers are described by :class:`LayerSpec` (parsed from the supernet's
settings strings); each elastic conv or linear runs its first ``active_out`` channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from hwnas import ConfigError
from hwnas_plugins.supernets.elastic_ops import (
    ACTIVATIONS,
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLinear,
    activation,
)

#: Layer kinds and the integer fields each takes, in settings-string order.
KINDS: dict[str, tuple[str, ...]] = {
    "conv": ("in", "out", "kernel", "stride", "padding", "groups", "bias"),
    "bn": ("features",),
    "act": (),
    "maxpool": ("kernel", "stride", "padding"),
    "avgpool": ("kernel", "stride", "padding"),
    "adaptiveavgpool": ("size",),
    "flatten": (),
    "linear": ("in", "out", "bias"),
}


@dataclass(frozen=True)
class LayerSpec:
    """One layer: ``kind`` plus integer fields (``act`` carries its function's name instead)."""

    kind: str
    values: tuple[tuple[str, int], ...] = ()
    name: str = ""

    def __getitem__(self, field: str) -> int:
        return dict(self.values)[field]

    @property
    def depthwise(self) -> bool:
        return self.kind == "conv" and self["groups"] > 1

    @classmethod
    def parse(cls, text: str) -> LayerSpec:
        """``"conv in=1 out=16 kernel=3 stride=1 padding=1 groups=1 bias=1"``, ``"act relu"``, ``"flatten"``."""
        kind, *parts = text.split()
        if kind not in KINDS:
            raise ConfigError(
                f"elastic-cnn layer {text!r}: unknown kind {kind!r}",
                hint=f"kinds: {', '.join(KINDS)}",
            )
        if kind == "act":
            if len(parts) != 1 or parts[0] not in ACTIVATIONS:
                raise ConfigError(
                    f"elastic-cnn layer {text!r}: name one activation",
                    hint=f"activations: {', '.join(ACTIVATIONS)}",
                )
            return cls(kind, name=parts[0])
        try:
            values = dict(part.split("=", 1) for part in parts)
            parsed = tuple((field, int(values[field])) for field in KINDS[kind])
        except (KeyError, ValueError):
            raise ConfigError(
                f"elastic-cnn layer {text!r}: expected {kind} {' '.join(f'{f}=INT' for f in KINDS[kind])}"
            ) from None
        return cls(kind, parsed)

    def __str__(self) -> str:
        if self.kind == "act":
            return f"act {self.name}"
        return " ".join([self.kind, *(f"{k}={v}" for k, v in self.values)])


def elastic_layer(spec: LayerSpec) -> nn.Module:
    """The elastic (or, for shape-free layers, plain) torch layer of one spec."""
    if spec.kind == "conv":
        return ElasticConv2d(
            spec["in"],
            spec["out"],
            (spec["kernel"],),
            spec["stride"],
            depthwise=spec.depthwise,
            bias=bool(spec["bias"]),
            padding=spec["padding"],
        )
    if spec.kind == "bn":
        return ElasticBatchNorm2d(spec["features"])
    if spec.kind == "act":
        return activation(spec.name)
    if spec.kind == "maxpool":
        return nn.MaxPool2d(spec["kernel"], spec["stride"], spec["padding"])
    if spec.kind == "avgpool":
        return nn.AvgPool2d(spec["kernel"], spec["stride"], spec["padding"])
    if spec.kind == "adaptiveavgpool":
        return nn.AdaptiveAvgPool2d(spec["size"])
    if spec.kind == "flatten":
        return nn.Flatten()
    return ElasticLinear(spec["in"], spec["out"], bias=bool(spec["bias"]))


class StaticCNN(nn.Sequential):
    """An ``nn.Sequential`` whose input is named ``x``, as the supernet's ``input_spec`` says
    (``nn.Sequential.forward`` names it ``input``, and the IR takes forward's argument name)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self:
            x = layer(x)
        return x


class ElasticCNN(nn.Module):
    """A chain of elastic layers; the supernet sets each elastic conv's or linear's ``active_out``."""

    def __init__(self, specs: Sequence[LayerSpec], in_channels: int) -> None:
        super().__init__()
        self.specs = tuple(specs)
        self.in_channels = in_channels
        self.layers = nn.ModuleList(elastic_layer(spec) for spec in self.specs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def to_static(self) -> StaticCNN:
        """The active widths as a plain sequential module with copied weights."""
        from hwnas_plugins.supernets.elastic_ops import frozen_copy

        static: list[nn.Module] = []
        channels = self.in_channels
        spatial = 1  # positions per channel a linear after flatten sees
        for index, (spec, layer) in enumerate(zip(self.specs, self.layers)):
            if spec.kind == "conv":
                static.append(layer.to_static(channels))
                channels = static[-1].out_channels
            elif spec.kind == "bn":
                static.append(layer.to_static(channels))
            elif spec.kind == "linear":
                static.append(layer.to_static(channels * spatial))
                channels, spatial = static[-1].out_features, 1
            else:
                if spec.kind == "flatten":
                    spatial = flatten_positions(self.specs, index, self.in_channels)
                static.append(frozen_copy(layer))
        return StaticCNN(*static)


def flatten_positions(specs: Sequence[LayerSpec], index: int, in_channels: int) -> int:
    """Positions per channel at the flatten ``specs[index]``: the next linear's inputs over the channels it flattens."""
    channels = in_channels
    for spec in specs[:index]:
        if spec.kind in ("conv", "linear"):
            channels = spec["out"]
    following = next((s for s in specs[index:] if s.kind == "linear"), None)
    return following["in"] // channels if following is not None else 1
