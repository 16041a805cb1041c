"""Torch modules of the OFA-style MobileNetV3: the elastic supernet and the static network a subnet extracts to.

The supernet plugin (:mod:`hwnas_plugins.supernets.mobilenet_v3`) imports
this module only when it builds or extracts a network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from hwnas_plugins.supernets.channels import make_divisible
from hwnas_plugins.supernets.elastic_ops import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticSqueezeExcite,
    activation,
    frozen_copy,
)


class MBConv(nn.Module):
    """Static inverted residual: optional 1x1 expand, depthwise conv, optional SE, 1x1 project, optional skip."""

    def __init__(
        self,
        expand: nn.Module | None,
        depthwise: nn.Module,
        se: nn.Module | None,
        project: nn.Module,
        residual: bool,
    ) -> None:
        super().__init__()
        self.expand = expand
        self.depthwise = depthwise
        self.se = se
        self.project = project
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.depthwise(y)
        if self.se is not None:
            y = self.se(y)
        y = self.project(y)
        return x + y if self.residual else y


class ElasticMBConv(nn.Module):
    """OFA's dynamic MBConv layer: elastic kernel size and expand ratio; in/out channels fixed."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_sizes: Sequence[int],
        expand_ratios: Sequence[float],
        stride: int,
        act: str,
        use_se: bool,
    ) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.act = act
        self.residual = stride == 1 and in_channels == out_channels
        max_mid = make_divisible(round(in_channels * max(expand_ratios)))
        if max(expand_ratios) == 1:
            self.expand_conv = None
            self.expand_bn = None
            max_mid = in_channels
        else:
            self.expand_conv = ElasticConv2d(in_channels, max_mid)
            self.expand_bn = ElasticBatchNorm2d(max_mid)
        self.depth_conv = ElasticConv2d(max_mid, max_mid, kernel_sizes, stride, depthwise=True)
        self.depth_bn = ElasticBatchNorm2d(max_mid)
        self.se = ElasticSqueezeExcite(max_mid) if use_se else None
        self.project_conv = ElasticConv2d(max_mid, out_channels)
        self.project_bn = ElasticBatchNorm2d(out_channels)
        self.activation = activation(act)
        self.set_active(max(kernel_sizes), max(expand_ratios))

    def mid_channels(self, expand_ratio: float) -> int:
        if self.expand_conv is None:
            return self.in_channels
        return make_divisible(round(self.in_channels * expand_ratio))

    def set_active(self, kernel: int, expand_ratio: float) -> None:
        self.active_mid = self.mid_channels(expand_ratio)
        if self.expand_conv is not None:
            self.expand_conv.active_out = self.active_mid
        self.depth_conv.active_kernel = kernel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        if self.expand_conv is not None:
            y = self.activation(self.expand_bn(self.expand_conv(y)))
        y = self.activation(self.depth_bn(self.depth_conv(y)))
        if self.se is not None:
            y = self.se(y)
        y = self.project_bn(self.project_conv(y))
        return x + y if self.residual else y

    def to_static(self) -> MBConv:
        mid = self.active_mid
        expand = None
        if self.expand_conv is not None:
            expand = nn.Sequential(
                self.expand_conv.to_static(self.in_channels),
                self.expand_bn.to_static(mid),
                activation(self.act),
            )
        depthwise = nn.Sequential(
            self.depth_conv.to_static(mid), self.depth_bn.to_static(mid), activation(self.act)
        )
        se = self.se.to_static(mid) if self.se is not None else None
        project = nn.Sequential(
            self.project_conv.to_static(mid), self.project_bn.to_static(self.out_channels)
        )
        return MBConv(expand, depthwise, se, project, self.residual)


class MobileNetV3(nn.Module):
    """A static MobileNetV3 subnet: stem, MBConv blocks, final expand, pooled feature mix, classifier."""

    def __init__(
        self,
        stem: nn.Module,
        blocks: Sequence[nn.Module],
        final_expand: nn.Module,
        feature_mix: nn.Module,
        classifier: nn.Module,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.blocks = nn.Sequential(*blocks)
        self.final_expand = final_expand
        self.feature_mix = feature_mix
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        return self.classifier(torch.flatten(self.feature_mix(x), 1))


class ElasticMobileNetV3(nn.Module):
    """The OFA MobileNetV3 supernet: a fixed stem and first block, then stages of elastic MBConvs."""

    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        stem_width: int,
        stem_stride: int,
        stage_widths: Sequence[int],
        stage_strides: Sequence[int],
        stage_acts: Sequence[str],
        stage_se: Sequence[bool],
        final_expand_width: int,
        feature_mix_width: int,
        kernel_sizes: Sequence[int],
        expand_ratios: Sequence[float],
        max_depth: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_width, 3, stem_stride, 1, bias=False),
            nn.BatchNorm2d(stem_width),
            nn.Hardswish(),
        )
        self.first_block = ElasticMBConv(stem_width, stem_width, (3,), (1,), 1, "relu", False)
        stages = []
        width = stem_width
        for out, stride, act, se in zip(
            stage_widths, stage_strides, stage_acts, stage_se, strict=True
        ):
            blocks = []
            for index in range(max_depth):
                blocks.append(
                    ElasticMBConv(
                        width,
                        out,
                        kernel_sizes,
                        expand_ratios,
                        stride if index == 0 else 1,
                        act,
                        se,
                    )
                )
                width = out
            stages.append(nn.ModuleList(blocks))
        self.stages = nn.ModuleList(stages)
        self.final_expand = nn.Sequential(
            nn.Conv2d(width, final_expand_width, 1, bias=False),
            nn.BatchNorm2d(final_expand_width),
            nn.Hardswish(),
        )
        self.feature_mix = nn.Sequential(
            nn.Conv2d(final_expand_width, feature_mix_width, 1, bias=False), nn.Hardswish()
        )
        self.classifier = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(feature_mix_width, num_classes)
        )
        self.active_depths = [max_depth] * len(stages)

    def active_blocks(self) -> list[ElasticMBConv]:
        blocks = [self.first_block]
        for stage, depth in zip(self.stages, self.active_depths, strict=True):
            blocks.extend(stage[:depth])
        return blocks

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.active_blocks():
            x = block(x)
        x = self.final_expand(x).mean((2, 3), keepdim=True)
        return self.classifier(torch.flatten(self.feature_mix(x), 1))

    def to_static(self) -> MobileNetV3:
        return MobileNetV3(
            frozen_copy(self.stem),
            [block.to_static() for block in self.active_blocks()],
            frozen_copy(self.final_expand),
            frozen_copy(self.feature_mix),
            frozen_copy(self.classifier),
        )
