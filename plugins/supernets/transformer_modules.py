"""Torch modules of the elastic Transformer encoder (HAT-style) and the static encoder a subnet extracts to.

The supernet plugin (:mod:`hwnas_plugins.supernets.transformer`) imports
this module only when it builds or extracts a network.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from hwnas_plugins.supernets.elastic_ops import ElasticConv2d, ElasticLayerNorm, ElasticLinear


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head scaled dot-product attention written out (matmul, softmax, matmul) so every exporter handles it."""
    batch, tokens, dim = q.shape
    head_dim = dim // heads
    q = q.reshape(batch, tokens, heads, head_dim).transpose(1, 2)
    k = k.reshape(batch, tokens, heads, head_dim).transpose(1, 2)
    v = v.reshape(batch, tokens, heads, head_dim).transpose(1, 2)
    weights = torch.softmax(torch.matmul(q, k.transpose(-2, -1)) * head_dim**-0.5, dim=-1)
    return torch.matmul(weights, v).transpose(1, 2).reshape(batch, tokens, dim)


class EncoderLayer(nn.Module):
    """Static pre-norm encoder layer: ``x + attn(ln(x))`` then ``x + mlp(ln(x))`` with GELU."""

    def __init__(
        self,
        norm1: nn.Module,
        q: nn.Module,
        k: nn.Module,
        v: nn.Module,
        out: nn.Module,
        heads: int,
        norm2: nn.Module,
        fc1: nn.Module,
        fc2: nn.Module,
    ) -> None:
        super().__init__()
        self.norm1, self.q, self.k, self.v, self.out = norm1, q, k, v, out
        self.heads = heads
        self.norm2, self.fc1, self.fc2 = norm2, fc1, fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.out(attend(self.q(y), self.k(y), self.v(y), self.heads))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ElasticEncoderLayer(nn.Module):
    """HAT's elastic encoder layer: heads over a fixed attention width, MLP ratio, and the embedding width it is run at."""

    def __init__(self, max_embed: int, attention_dim: int, max_hidden: int) -> None:
        super().__init__()
        self.norm1 = ElasticLayerNorm(max_embed)
        self.q = ElasticLinear(max_embed, attention_dim)
        self.k = ElasticLinear(max_embed, attention_dim)
        self.v = ElasticLinear(max_embed, attention_dim)
        self.out = ElasticLinear(attention_dim, max_embed)
        self.norm2 = ElasticLayerNorm(max_embed)
        self.fc1 = ElasticLinear(max_embed, max_hidden)
        self.fc2 = ElasticLinear(max_hidden, max_embed)
        self.attention_dim = attention_dim
        self.heads = 1

    def set_active(self, embed: int, heads: int, hidden: int) -> None:
        self.embed = embed
        self.heads = heads
        self.hidden = hidden
        self.out.active_out = embed
        self.fc1.active_out = hidden
        self.fc2.active_out = embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.out(attend(self.q(y), self.k(y), self.v(y), self.heads))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))

    def to_static(self) -> EncoderLayer:
        embed = self.embed
        return EncoderLayer(
            self.norm1.to_static(embed),
            self.q.to_static(embed),
            self.k.to_static(embed),
            self.v.to_static(embed),
            self.out.to_static(self.attention_dim),
            self.heads,
            self.norm2.to_static(embed),
            self.fc1.to_static(embed),
            self.fc2.to_static(self.hidden),
        )


class PatchEmbedding(nn.Module):
    """Static ViT input: non-overlapping patches projected by a strided conv, a class token, position embeddings."""

    def __init__(self, proj: nn.Conv2d, cls_token: torch.Tensor, position: torch.Tensor) -> None:
        super().__init__()
        self.proj = proj
        self.cls_token = nn.Parameter(cls_token)
        self.position = nn.Parameter(position)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.position


class TokenEmbedding(nn.Module):
    """Static BERT-style input: token embeddings plus learned position embeddings (token 0 is the [CLS] slot)."""

    def __init__(self, table: torch.Tensor, position: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Embedding.from_pretrained(table, freeze=False)
        self.position = nn.Parameter(position)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table(tokens) + self.position


class ElasticPatchEmbedding(nn.Module):
    def __init__(self, in_channels: int, max_embed: int, patch: int, patches: int) -> None:
        super().__init__()
        self.proj = ElasticConv2d(in_channels, max_embed, (patch,), patch, bias=True, padding=0)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, max_embed))
        self.position = nn.Parameter(torch.randn(1, patches + 1, max_embed) * 0.02)
        self.in_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        embed = self.proj.active_out
        x = self.proj(x).flatten(2).transpose(1, 2)
        cls = self.cls_token[:, :, :embed].expand(x.shape[0], -1, -1)
        return torch.cat([cls, x], dim=1) + self.position[:, :, :embed]

    def to_static(self) -> PatchEmbedding:
        embed = self.proj.active_out
        return PatchEmbedding(
            self.proj.to_static(self.in_channels),
            self.cls_token[:, :, :embed].detach().clone(),
            self.position[:, :, :embed].detach().clone(),
        )


class ElasticTokenEmbedding(nn.Module):
    def __init__(self, vocab: int, max_embed: int, tokens: int) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.randn(vocab, max_embed) * 0.02)
        self.position = nn.Parameter(torch.randn(1, tokens, max_embed) * 0.02)
        self.active_out = max_embed

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        embed = self.active_out
        return F.embedding(tokens, self.table[:, :embed]) + self.position[:, :, :embed]

    def to_static(self) -> TokenEmbedding:
        embed = self.active_out
        return TokenEmbedding(
            self.table[:, :embed].detach().clone(), self.position[:, :, :embed].detach().clone()
        )


class Encoder(nn.Module):
    """A static encoder subnet: embedding, encoder layers, final norm, classifier on the first token."""

    def __init__(
        self, embedding: nn.Module, layers: Sequence[nn.Module], norm: nn.Module, head: nn.Module
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.layers = nn.Sequential(*layers)
        self.norm = norm
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(self.layers(self.embedding(x)))
        return self.head(x[:, 0])


class ElasticEncoder(nn.Module):
    """The elastic Transformer encoder supernet (HAT): embedding width, layer count, heads and MLP ratio per layer."""

    def __init__(
        self,
        *,
        embedding: str,
        in_channels: int,
        image_size: int,
        patch_size: int,
        vocab_size: int,
        seq_len: int,
        num_classes: int,
        max_embed: int,
        attention_dim: int,
        max_hidden: int,
        max_layers: int,
    ) -> None:
        super().__init__()
        if embedding == "patch":
            patches = (image_size // patch_size) ** 2
            self.embedding: nn.Module = ElasticPatchEmbedding(
                in_channels, max_embed, patch_size, patches
            )
        else:
            self.embedding = ElasticTokenEmbedding(vocab_size, max_embed, seq_len)
        self.layers = nn.ModuleList(
            ElasticEncoderLayer(max_embed, attention_dim, max_hidden) for _ in range(max_layers)
        )
        self.norm = ElasticLayerNorm(max_embed)
        self.head = ElasticLinear(max_embed, num_classes)
        self.active_layers = max_layers

    def set_embed(self, embed: int) -> None:
        if isinstance(self.embedding, ElasticPatchEmbedding):
            self.embedding.proj.active_out = embed
        else:
            self.embedding.active_out = embed
        self.embed = embed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embedding(x)
        for layer in self.layers[: self.active_layers]:
            x = layer(x)
        return self.head(self.norm(x)[:, 0])

    def to_static(self) -> Encoder:
        return Encoder(
            self.embedding.to_static(),
            [layer.to_static() for layer in self.layers[: self.active_layers]],
            self.norm.to_static(self.embed),
            self.head.to_static(self.embed),
        )
