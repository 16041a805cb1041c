"""The ``elastic-bert`` supernet plugin: a BERT-style sentence encoder with elastic depth, heads and FFN width.

Unlike HAT's ``elastic-transformer`` (pre-norm, heads splitting a fixed
width) it is post-norm with heads of fixed width, as pretrained BERT models
are, so ``--from-pretrained`` can wrap one (all-MiniLM-L6-v2) exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from hwnas import ConfigError, Gene, SearchSpace, Subnet, Supernet, TensorSpec, hookimpl, seeded

if TYPE_CHECKING:
    import torch

    from hwnas import PretrainedModel


@dataclass(frozen=True)
class BertSettings:
    """Architecture of an elastic BERT encoder.

    Heads are ``head_dim`` wide; ``ffn`` lists FFN widths; ``layers`` depths.
    ``layer_order`` ranks the layers by importance: a subnet of depth n runs
    the first n of it in network order (empty: the first n layers).
    ``num_classes`` 0 outputs the mean-pooled sentence embedding (unit length
    if ``normalize``), otherwise a linear task head's logits.
    """

    vocab_size: int = 30522
    seq_len: int = 128
    hidden: int = 384
    head_dim: int = 32
    heads: tuple[int, ...] = (4, 8, 12)
    ffn: tuple[int, ...] = (384, 768, 1152, 1536)
    layers: tuple[int, ...] = (3, 4, 5, 6)
    layer_order: tuple[int, ...] = ()
    num_classes: int = 0
    normalize: bool = True
    pad_id: int = 0
    eps: float = 1e-12


PRESETS: dict[str, BertSettings] = {
    # all-MiniLM-L6-v2's shape: 6 layers of 12 heads x 32, FFN 1536, 384 wide.
    "minilm": BertSettings(),
    # a toy encoder for quick checks: 64-word vocabulary, 16 tokens.
    "tiny": BertSettings(
        vocab_size=64,
        seq_len=16,
        hidden=32,
        head_dim=8,
        heads=(2, 4),
        ffn=(32, 64),
        layers=(1, 2),
    ),
}


class ElasticBert(Supernet):
    """BERT-style encoder: depth (layers kept by importance), heads and FFN width per layer."""

    name: ClassVar[str] = "elastic-bert"
    description: ClassVar[str] = (
        "BERT-style sentence encoder (elastic depth, heads, FFN width); wraps pretrained BERTs"
    )
    settings_class: ClassVar[type[Any]] = BertSettings
    presets: ClassVar[dict[str, Any]] = PRESETS

    def validate_settings(self, settings: BertSettings) -> None:
        super().validate_settings(settings)
        for name in ("heads", "ffn", "layers"):
            values = getattr(settings, name)
            if not values or min(values) < 1:
                raise ConfigError(f"elastic-bert: {name} must be positive and non-empty")
        for name in ("vocab_size", "seq_len", "hidden", "head_dim"):
            if getattr(settings, name) < 1:
                raise ConfigError(f"elastic-bert: {name} must be positive")
        depth = max(settings.layers)
        if settings.layer_order and sorted(settings.layer_order) != list(range(depth)):
            raise ConfigError(
                f"elastic-bert: layer_order {list(settings.layer_order)} must order the layers 0..{depth - 1}"
            )
        if settings.num_classes < 0:
            raise ConfigError("elastic-bert: num_classes must be 0 (embeddings) or more")

    @property
    def order(self) -> tuple[int, ...]:
        return self.settings.layer_order or tuple(range(max(self.settings.layers)))

    # -- space ---------------------------------------------------------------------

    def build_space(self) -> SearchSpace:
        s = self.settings
        depths = tuple(sorted(set(s.layers)))
        rank = {layer: position for position, layer in enumerate(self.order)}
        genes = [Gene("layers", depths, description="encoder layers (most important kept)")]
        for layer in range(max(depths)):
            # layer j runs in every subnet deeper than its importance rank
            deeper = tuple(n for n in depths if n > rank[layer])
            condition = None if rank[layer] < min(depths) else ("layers", deeper)
            genes.append(Gene(f"l{layer}.heads", tuple(sorted(set(s.heads))), condition, "heads"))
            genes.append(Gene(f"l{layer}.ffn", tuple(sorted(set(s.ffn))), condition, "FFN width"))
        return SearchSpace(self.name, genes)

    # -- modules -------------------------------------------------------------------

    def build(self) -> torch.nn.Module:
        from hwnas_plugins.supernets.bert_modules import ElasticBertEncoder

        s = self.settings
        with seeded(self.init_seed):
            return ElasticBertEncoder(
                vocab=s.vocab_size,
                hidden=s.hidden,
                tokens=s.seq_len,
                max_heads=max(s.heads),
                head_dim=s.head_dim,
                max_ffn=max(s.ffn),
                max_layers=max(s.layers),
                num_classes=s.num_classes,
                pad_id=s.pad_id,
                normalize=s.normalize,
                eps=s.eps,
            )

    def set_active(self, module: torch.nn.Module, subnet: Subnet) -> None:
        subnet = self.subnet(subnet)
        module.active = tuple(sorted(self.order[: int(subnet["layers"])]))
        for layer in module.active:
            module.layers[layer].set_active(
                int(subnet[f"l{layer}.heads"]), int(subnet[f"l{layer}.ffn"])
            )

    def extract(self, module: torch.nn.Module, subnet: Subnet) -> torch.nn.Module:
        self.set_active(module, subnet)
        return module.to_static().eval()

    def input_spec(self, subnet: Subnet, batch: int = 1) -> TensorSpec:
        return TensorSpec("x", (batch, self.settings.seq_len), "int64")

    def example_input(self, subnet: Subnet, batch: int = 1, *, seed: int = 0) -> torch.Tensor:
        """Token ids of a sentence filling three quarters of the input, the rest padding (so the mask matters)."""
        import torch

        s = self.settings
        generator = torch.Generator().manual_seed(seed)
        ids = torch.randint(1, s.vocab_size, (batch, s.seq_len), generator=generator)
        ids[:, (3 * s.seq_len) // 4 :] = s.pad_id
        return ids

    def adapt_input(self, batch: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        """Drop trailing all-padding columns: masked tokens change nothing, and short texts run faster."""
        real = (batch != self.settings.pad_id).any(dim=0).nonzero()
        length = int(real.max()) + 1 if len(real) else 1
        return batch[:, :length]

    def static_input(self, batch: torch.Tensor, subnet: Subnet) -> torch.Tensor:
        """Token ids padded to ``seq_len``, as stored: exported models take the full length."""
        return batch

    # -- from a pretrained model -----------------------------------------------------

    @classmethod
    def from_pretrained(
        cls,
        source: str,
        *,
        weights: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> PretrainedModel:
        """Wrap a pretrained BERT encoder: ``all-MiniLM-L6-v2`` (the packaged model) or a Hugging Face model folder."""
        from hwnas_plugins.supernets.bert_pretrained import load_pretrained_bert

        if weights is not None:
            raise ConfigError(
                "elastic-bert reads its weights from the model folder; --pretrained-weights does not apply",
                hint="pass the folder holding config.json and model.safetensors as --from-pretrained",
            )
        return load_pretrained_bert(cls, source, overrides or {})

    def sort_by_importance(
        self, module: torch.nn.Module, batches: list[Any]
    ) -> tuple[Supernet, dict[str, Any]]:
        from hwnas_plugins.supernets.bert_pretrained import sort_bert_by_importance

        return sort_bert_by_importance(self, module, batches)


@hookimpl
def hwnas_register_supernets(register: Callable[..., None]) -> None:
    register(ElasticBert)
