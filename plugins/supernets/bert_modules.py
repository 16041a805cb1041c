"""Torch modules of the elastic BERT-style encoder (post-norm, fixed head width) and the static encoder a subnet extracts to.

Importance ordering (heads, FFN neurons, layers) lives in ``bert_importance``;
the supernet plugin (:mod:`hwnas_plugins.supernets.bert`) imports this module only when it builds a network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas_plugins.supernets.elastic_ops import ElasticLinear, frozen_copy

#: Added to the attention scores of padding tokens. Finite (not the dtype's minimum) so
#: that exporters, TVM and int8 quantisation see an ordinary constant; exp(-1e4) is 0 in fp32.
MASKED = -1.0e4


def attention_bias(tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """(B, 1, 1, T) additive bias: 0 for real tokens, :data:`MASKED` for padding."""
    return (tokens == pad_id).to(torch.float32)[:, None, None, :] * MASKED


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, bias: torch.Tensor
) -> torch.Tensor:
    """Masked multi-head attention written out (matmul, softmax, matmul) so every exporter handles it."""
    batch, tokens, width = q.shape
    head_dim = width // heads
    q = q.reshape(batch, tokens, heads, head_dim).transpose(1, 2)
    k = k.reshape(batch, tokens, heads, head_dim).transpose(1, 2)
    v = v.reshape(batch, tokens, heads, head_dim).transpose(1, 2)
    scores = torch.matmul(q, k.transpose(-2, -1)) * head_dim**-0.5 + bias
    weights = torch.softmax(scores, dim=-1)
    return torch.matmul(weights, v).transpose(1, 2).reshape(batch, tokens, width)


def mean_pool(hidden: torch.Tensor, tokens: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Mean of the non-padding token states (sentence-transformers' mean pooling)."""
    mask = (tokens != pad_id).to(hidden.dtype)[:, :, None]
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


class BertLayer(nn.Module):
    """Static post-norm encoder layer: ``ln(x + attn(x))`` then ``ln(x + fc2(gelu(fc1(x))))``."""

    def __init__(
        self,
        q: nn.Linear,
        k: nn.Linear,
        v: nn.Linear,
        out: nn.Linear,
        heads: int,
        norm1: nn.LayerNorm,
        fc1: nn.Linear,
        fc2: nn.Linear,
        norm2: nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.q, self.k, self.v, self.out = q, k, v, out
        self.heads = heads
        self.norm1, self.fc1, self.fc2, self.norm2 = norm1, fc1, fc2, norm2

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.out(attend(self.q(x), self.k(x), self.v(x), self.heads, bias)))
        return self.norm2(x + self.fc2(F.gelu(self.fc1(x))))


class ElasticBertLayer(nn.Module):
    """A BERT layer whose first ``heads`` heads (of fixed width) and first ``ffn`` FFN neurons are active."""

    def __init__(
        self, hidden: int, max_heads: int, head_dim: int, max_ffn: int, eps: float
    ) -> None:
        super().__init__()
        width = max_heads * head_dim
        self.q = ElasticLinear(hidden, width)
        self.k = ElasticLinear(hidden, width)
        self.v = ElasticLinear(hidden, width)
        self.out = ElasticLinear(width, hidden)
        self.norm1 = nn.LayerNorm(hidden, eps=eps)
        self.fc1 = ElasticLinear(hidden, max_ffn)
        self.fc2 = ElasticLinear(max_ffn, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=eps)
        self.head_dim = head_dim
        self.set_active(max_heads, max_ffn)

    def set_active(self, heads: int, ffn: int) -> None:
        self.heads = heads
        for projection in (self.q, self.k, self.v):
            projection.active_out = heads * self.head_dim
        self.fc1.active_out = ffn

    def attention(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """The attention output before the output projection (B, T, heads * head_dim)."""
        return attend(self.q(x), self.k(x), self.v(x), self.heads, bias)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = self.norm1(x + self.out(self.attention(x, bias)))
        return self.norm2(x + self.fc2(F.gelu(self.fc1(x))))

    def to_static(self) -> BertLayer:
        hidden = self.norm1.normalized_shape[0]
        width = self.heads * self.head_dim
        return BertLayer(
            self.q.to_static(hidden),
            self.k.to_static(hidden),
            self.v.to_static(hidden),
            self.out.to_static(width),
            self.heads,
            frozen_copy(self.norm1),
            self.fc1.to_static(hidden),
            self.fc2.to_static(self.fc1.active_out),
            frozen_copy(self.norm2),
        )


class BertEmbedding(nn.Module):
    """Word + token-type (sentence A) + position embeddings, then layer norm, as BERT's."""

    def __init__(
        self,
        vocab: int,
        hidden: int,
        tokens: int,
        eps: float,
    ) -> None:
        super().__init__()
        self.words = nn.Embedding(vocab, hidden)
        self.token_type = nn.Parameter(torch.zeros(hidden))
        self.position = nn.Parameter(torch.zeros(tokens, hidden))
        self.norm = nn.LayerNorm(hidden, eps=eps)
        nn.init.normal_(self.words.weight, std=0.02)
        nn.init.normal_(self.position, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        # BERT's order: (words + token type) + positions.
        return self.norm(self.words(tokens) + self.token_type + self.position[: tokens.shape[1]])


class BertEncoder(nn.Module):
    """A static encoder subnet: embeddings, the chosen layers, mean pooling, then L2 norm or a task head."""

    def __init__(
        self,
        embedding: BertEmbedding,
        layers: Sequence[nn.Module],
        head: nn.Module | None,
        pad_id: int,
        normalize: bool,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.layers = nn.ModuleList(layers)
        self.head = head
        self.pad_id = pad_id
        self.normalize = normalize

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return encode(self, x)


class ElasticBertEncoder(nn.Module):
    """The elastic BERT encoder: active layers (a subset kept in order), heads and FFN width per layer."""

    def __init__(
        self,
        *,
        vocab: int,
        hidden: int,
        tokens: int,
        max_heads: int,
        head_dim: int,
        max_ffn: int,
        max_layers: int,
        num_classes: int,
        pad_id: int,
        normalize: bool,
        eps: float,
    ) -> None:
        super().__init__()
        self.embedding = BertEmbedding(vocab, hidden, tokens, eps)
        self.layers = nn.ModuleList(
            ElasticBertLayer(hidden, max_heads, head_dim, max_ffn, eps) for _ in range(max_layers)
        )
        self.head = nn.Linear(hidden, num_classes) if num_classes else None
        self.pad_id = pad_id
        self.normalize = normalize
        self.active: tuple[int, ...] = tuple(range(max_layers))

    def active_layers(self) -> list[nn.Module]:
        return [self.layers[i] for i in self.active]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return encode(self, x)

    def to_static(self) -> BertEncoder:
        return BertEncoder(
            frozen_copy(self.embedding),
            [self.layers[i].to_static() for i in self.active],
            frozen_copy(self.head) if self.head is not None else None,
            self.pad_id,
            self.normalize,
        )


def encode(encoder: BertEncoder | ElasticBertEncoder, tokens: torch.Tensor) -> torch.Tensor:
    """The forward pass both encoders share: the sentence embedding (unit length) or the head's logits."""
    bias = attention_bias(tokens, encoder.pad_id)
    hidden = encoder.embedding(tokens)
    layers = encoder.active_layers() if isinstance(encoder, ElasticBertEncoder) else encoder.layers
    for layer in layers:
        hidden = layer(hidden, bias)
    pooled = mean_pool(hidden, tokens, encoder.pad_id)
    if encoder.normalize:
        pooled = F.normalize(pooled, p=2.0, dim=1)
    return encoder.head(pooled) if encoder.head is not None else pooled
