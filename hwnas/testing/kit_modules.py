"""The torch modules of the kit's models, at module level so that worker processes can import them.

A compile worker unpickles the IR's module by class name: a class defined in
a function would keep the kit's models out of the isolated compile path that
real plugins take. Imports torch (only :mod:`hwnas.testing.models`' builders import this).
"""

from __future__ import annotations

import torch


class TwoInTwoOut(torch.nn.Module):
    """An image and a vector in; a head and a gated feature map out."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.embed = torch.nn.Linear(6, 4)
        self.head = torch.nn.Linear(4, 3)

    def forward(
        self, image: torch.Tensor, vector: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features = torch.relu(self.conv(image))  # (1, 4, 8, 8)
        gate = torch.sigmoid(self.embed(vector))  # (1, 4)
        mixed = features * gate[:, :, None, None]
        return self.head(mixed.mean(dim=(2, 3))), mixed - vector.sum()


class Attention(torch.nn.Module):
    """Pre-norm single-head self-attention with residuals and a GELU MLP."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(width)
        self.qkv = torch.nn.Linear(width, 3 * width)
        self.proj = torch.nn.Linear(width, width)
        self.norm2 = torch.nn.LayerNorm(width)
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(width, 2 * width),
            torch.nn.GELU(),
            torch.nn.Linear(2 * width, width),
        )
        self.scale = width**-0.5

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.norm1(tokens)).chunk(3, dim=-1)
        weights = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        tokens = tokens + self.proj(weights @ v)
        return tokens + self.mlp(self.norm2(tokens))
