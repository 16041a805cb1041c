"""The ``ofa-mbv3`` supernet plugin: Once-for-All's MobileNetV3 space (elastic kernel, expand ratio, depth, resolution).

Settings and the search space live here and import no torch; the torch
modules are in :mod:`hwnas_plugins.supernets.mobilenet_v3_modules`.
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

ACTS = ("relu", "h_swish")


@dataclass(frozen=True)
class MobileNetV3Settings:
    """Architecture of an OFA MobileNetV3 supernet; stage lists are cut to ``num_stages``."""

    in_channels: int = 3
    num_classes: int = 1000
    width_mult: float = 1.0
    num_stages: int = 5
    stem_width: int = 16
    stem_stride: int = 2
    stage_widths: tuple[int, ...] = (24, 40, 80, 112, 160)
    stage_strides: tuple[int, ...] = (2, 2, 2, 1, 2)
    stage_acts: tuple[str, ...] = ("relu", "relu", "h_swish", "h_swish", "h_swish")
    stage_se: tuple[bool, ...] = (False, True, False, True, True)
    final_expand_width: int = 960
    feature_mix_width: int = 1280
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    expand_ratios: tuple[int, ...] = (3, 4, 6)
    depths: tuple[int, ...] = (2, 3, 4)
    resolutions: tuple[int, ...] = tuple(range(128, 225, 4))
    dropout: float = 0.1


PRESETS: dict[str, MobileNetV3Settings] = {
    # Once-for-All's space: 5 stages of 2-4 blocks, kernel 3/5/7, expand 3/4/6, 128-224 px.
    "full": MobileNetV3Settings(),
    # digits-sized: 1 channel, 10 classes, 3 small stages, 16-32 px; trains on a CPU in minutes.
    "tiny": MobileNetV3Settings(
        in_channels=1,
        num_classes=10,
        num_stages=3,
        stem_width=8,
        stem_stride=1,
        stage_widths=(16, 24, 32),
        stage_strides=(2, 2, 2),
        stage_acts=("relu", "h_swish", "h_swish"),
        stage_se=(False, True, True),
        final_expand_width=64,
        feature_mix_width=128,
        resolutions=(16, 20, 24, 28, 32),
        dropout=0.0,
    ),
}


def _scaled(channels: int, mult: float) -> int:
    return make_divisible(channels * mult)


class OFAMobileNetV3(Supernet):
    """Once-for-All MobileNetV3: per block kernel 3/5/7 and expand 3/4/6, per stage depth 2-4, input resolution."""

    name: ClassVar[str] = "ofa-mbv3"
    description: ClassVar[str] = (
        "Once-for-All MobileNetV3 (elastic kernel, expand ratio, depth, resolution)"
    )
    settings_class: ClassVar[type[Any]] = MobileNetV3Settings
    presets: ClassVar[dict[str, Any]] = PRESETS

    def validate_settings(self, settings: MobileNetV3Settings) -> None:
        super().validate_settings(settings)
        lists = ("stage_widths", "stage_strides", "stage_acts", "stage_se")
        short = [n for n in lists if len(getattr(settings, n)) < settings.num_stages]
        if settings.num_stages < 1 or short:
            raise ConfigError(
                f"ofa-mbv3: num_stages={settings.num_stages} needs at least that many entries in {', '.join(short) or 'each stage list'}",
                hint="shorten num_stages or give longer stage_* lists",
            )
        bad_acts = [a for a in settings.stage_acts if a not in ACTS]
        if bad_acts:
            raise ConfigError(
                f"ofa-mbv3: stage_acts {bad_acts} are not known", hint=f"use {', '.join(ACTS)}"
            )
        if any(k % 2 == 0 or k < 1 for k in settings.kernel_sizes):
            raise ConfigError(
                f"ofa-mbv3: kernel_sizes {list(settings.kernel_sizes)} must be odd and positive"
            )
        if min(settings.depths, default=0) < 1 or min(settings.expand_ratios, default=0) <= 0:
            raise ConfigError("ofa-mbv3: depths and expand_ratios must be positive and non-empty")
        if min(settings.resolutions, default=0) < 1:
            raise ConfigError("ofa-mbv3: resolutions must be positive and non-empty")

    # -- space ---------------------------------------------------------------------

    def build_space(self) -> SearchSpace:
        s = self.settings
        genes = [
            Gene("resolution", tuple(s.resolutions), description="input height and width (px)")
        ]
        depths = tuple(sorted(set(s.depths)))
        for stage in range(1, s.num_stages + 1):
            genes.append(Gene(f"s{stage}.depth", depths, description=f"blocks in stage {stage}"))
            for block in range(max(depths)):
                condition = None
                if block >= min(depths):
                    condition = (f"s{stage}.depth", tuple(d for d in depths if d > block))
                genes.append(
                    Gene(
                        f"s{stage}.b{block}.kernel",
                        tuple(s.kernel_sizes),
                        condition,
                        "depthwise kernel size",
                    )
                )
                genes.append(
                    Gene(
                        f"s{stage}.b{block}.expand",
                        tuple(s.expand_ratios),
                        condition,
                        "expand ratio",
                    )
                )
        return SearchSpace(self.name, genes)

    # -- modules -------------------------------------------------------------------

    def build(self) -> torch.nn.Module:
        from hwnas_plugins.supernets.mobilenet_v3_modules import ElasticMobileNetV3

        s = self.settings
        n = s.num_stages
        with seeded(self.init_seed):
            return ElasticMobileNetV3(
                in_channels=s.in_channels,
                num_classes=s.num_classes,
                stem_width=_scaled(s.stem_width, s.width_mult),
                stem_stride=s.stem_stride,
                stage_widths=[_scaled(w, s.width_mult) for w in s.stage_widths[:n]],
                stage_strides=s.stage_strides[:n],
                stage_acts=s.stage_acts[:n],
                stage_se=s.stage_se[:n],
                final_expand_width=_scaled(s.final_expand_width, s.width_mult),
                # as OFA: the last layer only grows with the width multiplier, never shrinks
                feature_mix_width=_scaled(s.feature_mix_width, s.width_mult)
                if s.width_mult > 1
                else s.feature_mix_width,
                kernel_sizes=s.kernel_sizes,
                expand_ratios=s.expand_ratios,
                max_depth=max(s.depths),
                dropout=s.dropout,
            )

    def set_active(self, module: torch.nn.Module, subnet: Subnet) -> None:
        subnet = self.subnet(subnet)
        depths = []
        for stage_index, stage in enumerate(module.stages, start=1):
            depth = int(subnet[f"s{stage_index}.depth"])
            depths.append(depth)
            for block_index, block in enumerate(stage[:depth]):
                block.set_active(
                    int(subnet[f"s{stage_index}.b{block_index}.kernel"]),
                    subnet[f"s{stage_index}.b{block_index}.expand"],
                )
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
    register(OFAMobileNetV3)
