"""The ``elastic-transformer`` supernet plugin: a HAT-style encoder with elastic embedding width, layers, heads and MLP ratio.

Inputs are image patches (ViT) or token ids (BERT-style), chosen by the
``embedding`` setting; the torch modules are in ``transformer_modules``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hwnas import ConfigError, Gene, SearchSpace, Subnet, Supernet, TensorSpec, hookimpl, seeded
from hwnas_plugins.supernets.inputs import resize_images

if TYPE_CHECKING:
    import torch

EMBEDDINGS = ("patch", "token")


@dataclass(frozen=True)
class TransformerSettings:
    """Architecture of an elastic encoder. ``attention_dim`` is fixed (HAT's qkv dim); heads split it."""

    embedding: str = "patch"
    in_channels: int = 3
    image_size: int = 224
    patch_size: int = 16
    vocab_size: int = 30522
    seq_len: int = 128
    num_classes: int = 1000
    embed_dims: tuple[int, ...] = (512, 640)
    attention_dim: int = 512
    heads: tuple[int, ...] = (4, 8)
    mlp_ratios: tuple[int, ...] = (2, 3, 4)
    layers: tuple[int, ...] = (1, 2, 3, 4, 5, 6)


PRESETS: dict[str, TransformerSettings] = {
    # HAT's encoder choices on a ViT input: embed 512/640, heads 4/8 over 512, MLP x2/3/4, 1-6 layers.
    "full": TransformerSettings(),
    # BERT-style token input with the same elastic choices (128 tokens).
    "text": TransformerSettings(embedding="token", num_classes=2),
    # digits-sized ViT: 8x8 single-channel images in 2x2 patches, 10 classes.
    "tiny": TransformerSettings(
        in_channels=1,
        image_size=8,
        patch_size=2,
        num_classes=10,
        embed_dims=(32, 48, 64),
        attention_dim=32,
        heads=(2, 4),
        layers=(1, 2, 3),
    ),
    # small token model: 64-word vocabulary, 16 tokens, 2 classes.
    "tiny-text": TransformerSettings(
        embedding="token",
        vocab_size=64,
        seq_len=16,
        num_classes=2,
        embed_dims=(32, 48, 64),
        attention_dim=32,
        heads=(2, 4),
        layers=(1, 2, 3),
    ),
}


class ElasticTransformer(Supernet):
    """HAT-style elastic encoder: embedding width, layer count, and per layer heads and MLP ratio."""

    name: ClassVar[str] = "elastic-transformer"
    description: ClassVar[str] = (
        "Transformer encoder, ViT or BERT-style input (elastic embed dim, layers, heads, MLP ratio)"
    )
    settings_class: ClassVar[type[Any]] = TransformerSettings
    presets: ClassVar[dict[str, Any]] = PRESETS

    def validate_settings(self, settings: TransformerSettings) -> None:
        super().validate_settings(settings)
        if settings.embedding not in EMBEDDINGS:
            raise ConfigError(
                f"elastic-transformer: embedding {settings.embedding!r} is not known",
                hint=f"use {' or '.join(EMBEDDINGS)}",
            )
        for name in ("embed_dims", "heads", "mlp_ratios", "layers"):
            values = getattr(settings, name)
            if not values or min(values) < 1:
                raise ConfigError(f"elastic-transformer: {name} must be positive and non-empty")
        bad = [h for h in settings.heads if settings.attention_dim % h]
        if bad:
            raise ConfigError(
                f"elastic-transformer: attention_dim {settings.attention_dim} is not divisible by heads {bad}"
            )
        if settings.embedding == "patch" and settings.image_size % settings.patch_size:
            raise ConfigError(
                f"elastic-transformer: image_size {settings.image_size} is not a multiple of patch_size {settings.patch_size}"
            )

    # -- space ---------------------------------------------------------------------

    def build_space(self) -> SearchSpace:
        s = self.settings
        layers = tuple(sorted(set(s.layers)))
        genes = [
            Gene("embed_dim", tuple(s.embed_dims), description="embedding width of every layer"),
            Gene("layers", layers, description="encoder layers"),
        ]
        for layer in range(max(layers)):
            condition = (
                None if layer < min(layers) else ("layers", tuple(n for n in layers if n > layer))
            )
            genes.append(Gene(f"l{layer}.heads", tuple(s.heads), condition, "attention heads"))
            genes.append(
                Gene(
                    f"l{layer}.mlp_ratio",
                    tuple(s.mlp_ratios),
                    condition,
                    "MLP hidden width / embed dim",
                )
            )
        return SearchSpace(self.name, genes)

    # -- modules -------------------------------------------------------------------

    def build(self) -> torch.nn.Module:
        from hwnas_plugins.supernets.transformer_modules import ElasticEncoder

        s = self.settings
        with seeded(self.init_seed):
            return ElasticEncoder(
                embedding=s.embedding,
                in_channels=s.in_channels,
                image_size=s.image_size,
                patch_size=s.patch_size,
                vocab_size=s.vocab_size,
                seq_len=s.seq_len,
                num_classes=s.num_classes,
                max_embed=max(s.embed_dims),
                attention_dim=s.attention_dim,
                max_hidden=max(s.embed_dims) * max(s.mlp_ratios),
                max_layers=max(s.layers),
            )

    def set_active(self, module: torch.nn.Module, subnet: Subnet) -> None:
        subnet = self.subnet(subnet)
        embed = int(subnet["embed_dim"])
        module.set_embed(embed)
        module.active_layers = int(subnet["layers"])
        for index, layer in enumerate(module.layers[: module.active_layers]):
            ratio = int(subnet[f"l{index}.mlp_ratio"])
            layer.set_active(embed, int(subnet[f"l{index}.heads"]), embed * ratio)

    def extract(self, module: torch.nn.Module, subnet: Subnet) -> torch.nn.Module:
        self.set_active(module, subnet)
        return module.to_static().eval()

    def input_spec(self, subnet: Subnet, batch: int = 1) -> TensorSpec:
        s = self.settings
        if s.embedding == "token":
            return TensorSpec("x", (batch, s.seq_len), "int64")
        return TensorSpec("x", (batch, s.in_channels, s.image_size, s.image_size), "float32")

    def example_input(self, subnet: Subnet, batch: int = 1, *, seed: int = 0) -> torch.Tensor:
        if self.settings.embedding != "token":
            return super().example_input(subnet, batch, seed=seed)
        import torch

        generator = torch.Generator().manual_seed(seed)
        return torch.randint(
            0, self.settings.vocab_size, (batch, self.settings.seq_len), generator=generator
        )

    def adapt_input(self, batch: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        if self.settings.embedding == "token":
            return batch
        return resize_images(batch, self.settings.image_size)


@hookimpl
def hwnas_register_supernets(register: Callable[..., None]) -> None:
    register(ElasticTransformer)
