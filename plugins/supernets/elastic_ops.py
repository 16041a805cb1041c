"""Elastic (weight-sharing) torch layers: each runs a slice of its largest weights and copies that slice out as a static layer.

Only supernet modules import this (it imports torch); the supernet plugins
themselves stay torch-free until a network is built.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas_plugins.supernets.channels import make_divisible

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "h_swish": nn.Hardswish,
    "hardswish": nn.Hardswish,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


def uninitialised(cls: type[nn.Module], *args: Any, **kwargs: Any) -> nn.Module:
    """``cls(*args, **kwargs)`` without drawing its initial weights: for a static layer whose
    weights are copied in next (drawing them was half the time of extracting a large subnet)."""
    layer = _skipping_init(cls)(*args, **kwargs)
    layer.__class__ = cls  # a plain nn.Conv2d / nn.Linear from here on
    return layer


@functools.cache
def _skipping_init(cls: type[nn.Module]) -> type[nn.Module]:
    class Uninitialised(cls):  # type: ignore[misc, valid-type]
        def reset_parameters(self) -> None:
            pass

    return Uninitialised


def activation(name: str) -> nn.Module:
    return ACTIVATIONS[name]()


def _centre(size: int, sub: int) -> tuple[int, int]:
    start = (size - sub) // 2
    return start, start + sub


class ElasticConv2d(nn.Module):
    """A conv whose output channels and kernel size are chosen at run time; input channels follow the input.

    Smaller kernels are the centre of the largest one passed through learned
    transform matrices (7->5, 5->3; identity at start), as Once-for-All's
    elastic kernel does. ``depthwise`` convs have one filter per input channel.
    """

    def __init__(
        self,
        max_in: int,
        max_out: int,
        kernel_sizes: Sequence[int] = (1,),
        stride: int = 1,
        *,
        depthwise: bool = False,
        bias: bool = False,
        padding: int | None = None,
    ) -> None:
        super().__init__()
        self.kernel_sizes = tuple(sorted(set(kernel_sizes)))
        self.max_kernel = self.kernel_sizes[-1]
        self.stride = stride
        self.depthwise = depthwise
        self.fixed_padding = padding
        if depthwise and max_in != max_out:
            raise ValueError(f"a depthwise conv keeps its channels: {max_in} in, {max_out} out")
        self.weight = nn.Parameter(
            torch.empty(max_out, 1 if depthwise else max_in, self.max_kernel, self.max_kernel)
        )
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        for larger, smaller in zip(
            self.kernel_sizes[:0:-1], self.kernel_sizes[-2::-1], strict=True
        ):
            self.register_parameter(
                f"transform_{larger}to{smaller}", nn.Parameter(torch.eye(smaller * smaller))
            )
        self.active_out = max_out
        self.active_kernel = self.max_kernel

    def padding(self, kernel: int) -> int:
        return kernel // 2 if self.fixed_padding is None else self.fixed_padding

    def active_weight(self, in_channels: int) -> torch.Tensor:
        out = in_channels if self.depthwise else self.active_out
        weight = self.weight[:out, : 1 if self.depthwise else in_channels]
        target = self.active_kernel
        size = self.max_kernel
        while size > target:
            smaller = max(k for k in self.kernel_sizes if k < size)
            start, end = _centre(size, smaller)
            crop = weight[:, :, start:end, start:end].reshape(-1, smaller * smaller)
            matrix = getattr(self, f"transform_{size}to{smaller}")
            weight = F.linear(crop, matrix).reshape(
                weight.shape[0], weight.shape[1], smaller, smaller
            )
            size = smaller
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        weight = self.active_weight(channels)
        bias = self.bias[: weight.shape[0]] if self.bias is not None else None
        groups = channels if self.depthwise else 1
        return F.conv2d(x, weight, bias, self.stride, self.padding(self.active_kernel), 1, groups)

    def to_static(self, in_channels: int) -> nn.Conv2d:
        weight = self.active_weight(in_channels).detach()
        out = weight.shape[0]
        conv = uninitialised(
            nn.Conv2d,
            in_channels,
            out,
            self.active_kernel,
            self.stride,
            self.padding(self.active_kernel),
            groups=in_channels if self.depthwise else 1,
            bias=self.bias is not None,
        )
        with torch.no_grad():
            conv.weight.copy_(weight)
            if self.bias is not None:
                conv.bias.copy_(self.bias[:out])
        return conv


class ElasticBatchNorm2d(nn.BatchNorm2d):
    """Batch norm over the first ``C`` features of its largest size (``C`` from the input).

    Running statistics of the slice are updated in place, so recalibrating a
    subnet inside the supernet works as OFA's does.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        if channels == self.num_features:
            return super().forward(x)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = (
                1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
            )
        use_batch = self.training or self.running_mean is None
        return F.batch_norm(
            x,
            self.running_mean[:channels] if self.running_mean is not None else None,
            self.running_var[:channels] if self.running_var is not None else None,
            self.weight[:channels] if self.weight is not None else None,
            self.bias[:channels] if self.bias is not None else None,
            use_batch,
            factor,
            self.eps,
        )

    def to_static(self, channels: int) -> nn.BatchNorm2d:
        bn = nn.BatchNorm2d(channels, eps=self.eps, momentum=self.momentum, affine=self.affine)
        with torch.no_grad():
            if self.affine:
                bn.weight.copy_(self.weight[:channels])
                bn.bias.copy_(self.bias[:channels])
            if self.running_mean is not None:
                bn.running_mean.copy_(self.running_mean[:channels])
                bn.running_var.copy_(self.running_var[:channels])
                bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn


class ElasticLinear(nn.Module):
    """A linear layer on the first ``in`` inputs (from the input) giving the first ``active_out`` outputs."""

    def __init__(self, max_in: int, max_out: int, bias: bool = True) -> None:
        super().__init__()
        reference = nn.Linear(max_in, max_out, bias=bias)
        self.weight = nn.Parameter(reference.weight.detach().clone())
        self.bias = nn.Parameter(reference.bias.detach().clone()) if bias else None
        self.active_out = max_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight[: self.active_out, : x.shape[-1]]
        bias = self.bias[: self.active_out] if self.bias is not None else None
        return F.linear(x, weight, bias)

    def to_static(self, in_features: int) -> nn.Linear:
        linear = uninitialised(nn.Linear, in_features, self.active_out, bias=self.bias is not None)
        with torch.no_grad():
            linear.weight.copy_(self.weight[: self.active_out, :in_features])
            if self.bias is not None:
                linear.bias.copy_(self.bias[: self.active_out])
        return linear


class ElasticLayerNorm(nn.LayerNorm):
    """Layer norm over the first ``E`` features of its largest size (``E`` from the input's last axis)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-1]
        weight = self.weight[:size] if self.weight is not None else None
        bias = self.bias[:size] if self.bias is not None else None
        return F.layer_norm(x, (size,), weight, bias, self.eps)

    def to_static(self, size: int) -> nn.LayerNorm:
        norm = nn.LayerNorm(size, eps=self.eps, elementwise_affine=self.elementwise_affine)
        if self.elementwise_affine:
            with torch.no_grad():
                norm.weight.copy_(self.weight[:size])
                norm.bias.copy_(self.bias[:size])
        return norm


class SqueezeExcite(nn.Module):
    """Static squeeze-and-excitation: channel gates from a global average (ReLU, then hard sigmoid)."""

    def __init__(self, reduce: nn.Conv2d, expand: nn.Conv2d) -> None:
        super().__init__()
        self.reduce = reduce
        self.expand = expand

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = F.hardsigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x * gate


class ElasticSqueezeExcite(nn.Module):
    """Squeeze-and-excitation whose width follows its input (mid = channels / reduction, rounded to 8), as OFA's."""

    def __init__(self, max_channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.reduction = reduction
        max_mid = make_divisible(max_channels // reduction)
        self.reduce = ElasticConv2d(max_channels, max_mid, bias=True)
        self.expand = ElasticConv2d(max_mid, max_channels, bias=True)

    def _set_width(self, channels: int) -> int:
        mid = make_divisible(channels // self.reduction)
        self.reduce.active_out = mid
        self.expand.active_out = channels
        return mid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._set_width(x.shape[1])
        gate = F.hardsigmoid(self.expand(F.relu(self.reduce(x.mean((2, 3), keepdim=True)))))
        return x * gate

    def to_static(self, channels: int) -> SqueezeExcite:
        mid = self._set_width(channels)
        return SqueezeExcite(self.reduce.to_static(channels), self.expand.to_static(mid))


def frozen_copy(module: nn.Module) -> nn.Module:
    """A deep copy for a static network: same weights, no sharing with the supernet."""
    return copy.deepcopy(module)
