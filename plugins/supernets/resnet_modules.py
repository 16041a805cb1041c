"""Torch modules of the elastic ResNet: the bottleneck supernet and the static network a subnet extracts to.

The supernet plugin (:mod:`hwnas_plugins.supernets.resnet`) imports this
module only when it builds or extracts a network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas_plugins.supernets.channels import make_divisible
from hwnas_plugins.supernets.elastic_ops import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticLinear,
    frozen_copy,
)


class Bottleneck(nn.Module):
    """Static bottleneck: 1x1 reduce, 3x3 (strided), 1x1 expand, plus an identity or projected shortcut."""

    def __init__(self, body: nn.Module, shortcut: nn.Module | None) -> None:
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.shortcut(x) if self.shortcut is not None else x
        return F.relu(self.body(x) + skip)


class ElasticBottleneck(nn.Module):
    """OFA's dynamic ResNet bottleneck: elastic output width and expand ratio (mid = out x ratio)."""

    def __init__(
        self, max_in: int, max_out: int, expand_ratios: Sequence[float], stride: int, project: bool
    ) -> None:
        super().__init__()
        max_mid = make_divisible(round(max_out * max(expand_ratios)))
        self.conv1 = ElasticConv2d(max_in, max_mid)
        self.bn1 = ElasticBatchNorm2d(max_mid)
        self.conv2 = ElasticConv2d(max_mid, max_mid, (3,), stride)
        self.bn2 = ElasticBatchNorm2d(max_mid)
        self.conv3 = ElasticConv2d(max_mid, max_out)
        self.bn3 = ElasticBatchNorm2d(max_out)
        if project:
            self.shortcut_conv: ElasticConv2d | None = ElasticConv2d(max_in, max_out, (1,), stride)
            self.shortcut_bn: ElasticBatchNorm2d | None = ElasticBatchNorm2d(max_out)
        else:
            self.shortcut_conv = None
            self.shortcut_bn = None
        self.set_active(max_out, max(expand_ratios))

    def set_active(self, out_channels: int, expand_ratio: float) -> None:
        self.active_out = out_channels
        self.active_mid = make_divisible(round(out_channels * expand_ratio))
        self.conv1.active_out = self.active_mid
        self.conv2.active_out = self.active_mid
        self.conv3.active_out = out_channels
        if self.shortcut_conv is not None:
            self.shortcut_conv.active_out = out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        skip = self.shortcut_bn(self.shortcut_conv(x)) if self.shortcut_conv is not None else x
        return F.relu(y + skip)

    def to_static(self, in_channels: int) -> Bottleneck:
        mid, out = self.active_mid, self.active_out
        body = nn.Sequential(
            self.conv1.to_static(in_channels),
            self.bn1.to_static(mid),
            nn.ReLU(),
            self.conv2.to_static(mid),
            self.bn2.to_static(mid),
            nn.ReLU(),
            self.conv3.to_static(mid),
            self.bn3.to_static(out),
        )
        shortcut = None
        if self.shortcut_conv is not None:
            shortcut = nn.Sequential(
                self.shortcut_conv.to_static(in_channels), self.shortcut_bn.to_static(out)
            )
        return Bottleneck(body, shortcut)


class ResNet(nn.Module):
    """A static ResNet subnet: stem, bottleneck blocks, global average pool, linear classifier."""

    def __init__(self, stem: nn.Module, blocks: Sequence[nn.Module], classifier: nn.Module) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.classifier(torch.flatten(x.mean((2, 3), keepdim=True), 1))


class ElasticResNet(nn.Module):
    """The elastic ResNet supernet: a fixed stem, then stages with elastic depth, width and expand ratio."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        stem_width: int,
        stem_stride: int,
        stem_pool: bool,
        stage_widths: Sequence[int],
        stage_strides: Sequence[int],
        max_depths: Sequence[int],
        expand_ratios: Sequence[float],
    ) -> None:
        super().__init__()
        stem: list[nn.Module] = [
            nn.Conv2d(in_channels, stem_width, 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.ReLU(),
        ]
        if stem_pool:
            stem.append(nn.MaxPool2d(3, 2, 1))
        self.stem = nn.Sequential(*stem)
        self.stem_width = stem_width
        stages = []
        width = stem_width
        for out, stride, depth in zip(stage_widths, stage_strides, max_depths, strict=True):
            blocks = [ElasticBottleneck(width, out, expand_ratios, stride, project=True)]
            blocks += [
                ElasticBottleneck(out, out, expand_ratios, 1, project=False)
                for _ in range(depth - 1)
            ]
            stages.append(nn.ModuleList(blocks))
            width = out
        self.stages = nn.ModuleList(stages)
        self.classifier = ElasticLinear(width, num_classes)
        self.active_depths = list(max_depths)

    def active_blocks(self) -> list[ElasticBottleneck]:
        return [
            block
            for stage, depth in zip(self.stages, self.active_depths, strict=True)
            for block in stage[:depth]
        ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.active_blocks():
            x = block(x)
        return self.classifier(torch.flatten(x.mean((2, 3), keepdim=True), 1))

    def to_static(self) -> ResNet:
        blocks = []
        width = self.stem_width
        for block in self.active_blocks():
            blocks.append(block.to_static(width))
            width = block.active_out
        return ResNet(frozen_copy(self.stem), blocks, self.classifier.to_static(width))
