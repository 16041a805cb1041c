"""The ``elastic-cnn`` supernet plugin: a plain CNN (a user's own, wrapped from pretrained) with elastic channel widths.

The architecture is data (one settings string per layer), so a checkpoint
rebuilds it without the user's code; the torch modules are in ``cnn_modules``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hwnas import ConfigError, Gene, SearchSpace, Subnet, Supernet, TensorSpec, hookimpl, seeded
from hwnas_plugins.supernets.inputs import resize_images

if TYPE_CHECKING:
    import torch

    from hwnas import PretrainedModel
    from hwnas_plugins.supernets.cnn_modules import LayerSpec


@dataclass(frozen=True)
class CNNSettings:
    """A chain of layers (see ``cnn_modules.KINDS``), the input it takes, and the width multipliers searched."""

    in_channels: int = 1
    image_size: int = 8
    layers: tuple[str, ...] = (
        "conv in=1 out=16 kernel=3 stride=1 padding=1 groups=1 bias=0",
        "bn features=16",
        "act relu",
        "conv in=16 out=32 kernel=3 stride=2 padding=1 groups=1 bias=0",
        "bn features=32",
        "act relu",
        "adaptiveavgpool size=1",
        "flatten",
        "linear in=32 out=10 bias=1",
    )
    widths: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)


PRESETS: dict[str, CNNSettings] = {"tiny": CNNSettings()}


class ElasticCNN(Supernet):
    """A plain CNN whose convs and hidden linears keep their most important channels (width multipliers)."""

    name: ClassVar[str] = "elastic-cnn"
    description: ClassVar[str] = (
        "Plain CNN chain with elastic channel widths; wraps a user's pretrained torch CNN"
    )
    settings_class: ClassVar[type[Any]] = CNNSettings
    presets: ClassVar[dict[str, Any]] = PRESETS

    def validate_settings(self, settings: CNNSettings) -> None:
        super().validate_settings(settings)
        specs = self.specs_of(settings)
        if not specs:
            raise ConfigError("elastic-cnn: layers is empty")
        if not settings.widths or not all(0 < w <= 1 for w in settings.widths):
            raise ConfigError("elastic-cnn: widths must be multipliers in (0, 1]")
        if max(settings.widths) != 1:
            raise ConfigError("elastic-cnn: widths must include 1 (the full network)")

    @staticmethod
    def specs_of(settings: CNNSettings) -> tuple[LayerSpec, ...]:
        from hwnas_plugins.supernets.cnn_modules import LayerSpec

        return tuple(LayerSpec.parse(text) for text in settings.layers)

    @property
    def specs(self) -> tuple[LayerSpec, ...]:
        return self.specs_of(self.settings)

    def elastic_layers(self) -> list[int]:
        """Indices of the convs and linears with elastic output width: every one but the last producer."""
        producers = [
            i
            for i, s in enumerate(self.specs)
            if s.kind == "linear" or (s.kind == "conv" and not s.depthwise)
        ]
        return producers[:-1]

    # -- space ---------------------------------------------------------------------

    def build_space(self) -> SearchSpace:
        genes = []
        for index in self.elastic_layers():
            full = self.specs[index]["out"]
            choices = tuple(sorted({max(1, round(full * w)) for w in self.settings.widths}))
            genes.append(
                Gene(f"l{index}.width", choices, description=f"output channels of layer {index}")
            )
        if not genes:
            raise ConfigError("elastic-cnn: the network has no layer whose width can change")
        return SearchSpace(self.name, genes)

    # -- modules -------------------------------------------------------------------

    def build(self) -> torch.nn.Module:
        from hwnas_plugins.supernets.cnn_modules import ElasticCNN as Module

        with seeded(self.init_seed):
            return Module(self.specs, self.settings.in_channels)

    def set_active(self, module: torch.nn.Module, subnet: Subnet) -> None:
        subnet = self.subnet(subnet)
        for index in self.elastic_layers():
            module.layers[index].active_out = int(subnet[f"l{index}.width"])

    def extract(self, module: torch.nn.Module, subnet: Subnet) -> torch.nn.Module:
        self.set_active(module, subnet)
        return module.to_static().eval()

    def input_spec(self, subnet: Subnet, batch: int = 1) -> TensorSpec:
        s = self.settings
        return TensorSpec("x", (batch, s.in_channels, s.image_size, s.image_size), "float32")

    def adapt_input(self, batch: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        return resize_images(batch, self.settings.image_size)

    # -- from a pretrained model -----------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        *,
        weights: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> PretrainedModel:
        """Wrap a static torch CNN: ``file.py:Name`` or ``package.module:Name`` (a module, class or factory)."""
        from hwnas_plugins.supernets.cnn_pretrained import load_pretrained_cnn

        return load_pretrained_cnn(cls, source, weights, overrides or {})

    def sort_by_importance(
        self, module: torch.nn.Module, batches: list[Any]
    ) -> tuple[Supernet, dict[str, Any]]:
        from hwnas_plugins.supernets.cnn_pretrained import sort_cnn_by_importance

        return self, sort_cnn_by_importance(self, module, batches)


@hookimpl
def hwnas_register_supernets(register: Callable[..., None]) -> None:
    register(ElasticCNN)
