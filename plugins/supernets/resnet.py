"""The ``elastic-resnet`` supernet plugin: bottleneck ResNet with elastic depth, width and expand ratio per stage (as OFA-ResNet).

Settings and the search space live here and import no torch; the torch
modules are in :mod:`hwnas_plugins.supernets.resnet_modules`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hwnas import ConfigError, Gene, SearchSpace, Subnet, Supernet, TensorSpec, hookimpl, seeded
from hwnas_plugins.supernets.channels import make_divisible
from hwnas_plugins.supernets.inputs import resize_images

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class ResNetSettings:
    """Architecture of an elastic ResNet; stage lists are cut to ``num_stages``."""

    in_channels: int = 3
    num_classes: int = 1000
    num_stages: int = 4
    stem_width: int = 64
    stem_stride: int = 2
    stem_pool: bool = True
    stage_widths: tuple[int, ...] = (256, 512, 1024, 2048)
    stage_strides: tuple[int, ...] = (1, 2, 2, 2)
    base_depths: tuple[int, ...] = (2, 2, 4, 2)
    extra_depths: tuple[int, ...] = (0, 1, 2)
    width_mults: tuple[float, ...] = (0.65, 0.8, 1.0)
    expand_ratios: tuple[float, ...] = (0.2, 0.25, 0.35)
    resolutions: tuple[int, ...] = (128, 160, 192, 224)


PRESETS: dict[str, ResNetSettings] = {
    # OFA-ResNet50's space: depth +0/1/2 over (2, 2, 4, 2), width x0.65/0.8/1.0, expand 0.2/0.25/0.35.
    "full": ResNetSettings(),
    # digits-sized: 1 channel, 10 classes, 3 narrow stages of 1-3 blocks, 16-32 px.
    "tiny": ResNetSettings(
        in_channels=1,
        num_classes=10,
        num_stages=3,
        stem_width=16,
        stem_stride=1,
        stem_pool=False,
        stage_widths=(32, 64, 96),
        stage_strides=(1, 2, 2),
        base_depths=(1, 1, 1),
        resolutions=(16, 24, 32),
    ),
}


class ElasticResNetSupernet(Supernet):
    """Elastic ResNet: per stage depth and width multiplier, per block expand ratio, input resolution."""

    name: ClassVar[str] = "elastic-resnet"
    description: ClassVar[str] = (
        "Bottleneck ResNet (elastic depth, width multiplier, expand ratio, resolution)"
    )
    settings_class: ClassVar[type[Any]] = ResNetSettings
    presets: ClassVar[dict[str, Any]] = PRESETS

    def validate_settings(self, settings: ResNetSettings) -> None:
        super().validate_settings(settings)
        lists = ("stage_widths", "stage_strides", "base_depths")
        short = [n for n in lists if len(getattr(settings, n)) < settings.num_stages]
        if settings.num_stages < 1 or short:
            raise ConfigError(
                f"elastic-resnet: num_stages={settings.num_stages} needs that many entries in {', '.join(short) or 'each stage list'}"
            )
        if (
            min(settings.base_depths[: settings.num_stages]) < 1
            or min(settings.extra_depths, default=-1) < 0
        ):
            raise ConfigError(
                "elastic-resnet: base_depths must be >= 1 and extra_depths >= 0 (and non-empty)"
            )
        for name in ("width_mults", "expand_ratios", "resolutions"):
            values = getattr(settings, name)
            if not values or min(values) <= 0:
                raise ConfigError(f"elastic-resnet: {name} must be positive and non-empty")

    def stage_depths(self, stage: int) -> tuple[int, ...]:
        base = self.settings.base_depths[stage]
        return tuple(sorted({base + extra for extra in self.settings.extra_depths}))

    def stage_width(self, stage: int, mult: float) -> int:
        return make_divisible(self.settings.stage_widths[stage] * mult)

    # -- space ---------------------------------------------------------------------

    def build_space(self) -> SearchSpace:
        s = self.settings
        genes = [
            Gene("resolution", tuple(s.resolutions), description="input height and width (px)")
        ]
        for stage in range(s.num_stages):
            depths = self.stage_depths(stage)
            tag = f"s{stage + 1}"
            genes.append(
                Gene(
                    f"{tag}.width",
                    tuple(s.width_mults),
                    description="width multiplier of the stage",
                )
            )
            genes.append(Gene(f"{tag}.depth", depths, description="blocks in the stage"))
            for block in range(max(depths)):
                condition = None
                if block >= min(depths):
                    condition = (f"{tag}.depth", tuple(d for d in depths if d > block))
                genes.append(
                    Gene(
                        f"{tag}.b{block}.expand",
                        tuple(s.expand_ratios),
                        condition,
                        "bottleneck expand ratio",
                    )
                )
        return SearchSpace(self.name, genes)

    # -- modules -------------------------------------------------------------------

    def build(self) -> torch.nn.Module:
        from hwnas_plugins.supernets.resnet_modules import ElasticResNet

        s = self.settings
        n = s.num_stages
        with seeded(self.init_seed):
            return ElasticResNet(
                in_channels=s.in_channels,
                num_classes=s.num_classes,
                stem_width=s.stem_width,
                stem_stride=s.stem_stride,
                stem_pool=s.stem_pool,
                stage_widths=[self.stage_width(i, max(s.width_mults)) for i in range(n)],
                stage_strides=s.stage_strides[:n],
                max_depths=[max(self.stage_depths(i)) for i in range(n)],
                expand_ratios=s.expand_ratios,
            )

    def set_active(self, module: torch.nn.Module, subnet: Subnet) -> None:
        subnet = self.subnet(subnet)
        depths = []
        for index, stage in enumerate(module.stages):
            tag = f"s{index + 1}"
            depth = int(subnet[f"{tag}.depth"])
            width = self.stage_width(index, float(subnet[f"{tag}.width"]))
            for block_index, block in enumerate(stage[:depth]):
                block.set_active(width, float(subnet[f"{tag}.b{block_index}.expand"]))
            depths.append(depth)
        module.active_depths = depths

    def extract(self, module: torch.nn.Module, subnet: Subnet) -> torch.nn.Module:
        self.set_active(module, subnet)
        return module.to_static().eval()

    def input_spec(self, subnet: Subnet, batch: int = 1) -> TensorSpec:
        size = int(self.subnet(subnet)["resolution"])
        return TensorSpec("x", (batch, self.settings.in_channels, size, size), "float32")

    def adapt_input(self, batch: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        return resize_images(batch, int(self.subnet(subnet)["resolution"]))


@hookimpl
def hwnas_register_supernets(register: Callable[..., None]) -> None:
    register(ElasticResNetSupernet)
