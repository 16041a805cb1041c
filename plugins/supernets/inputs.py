"""Making data batches fit a subnet's input: image supernets resize to the subnet's resolution gene.

Imported by the supernet plugins; torch is imported only when a batch is resized.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def resize_images(batch: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of an NCHW batch to ``size`` x ``size`` (returned as is when it already is)."""
    import torch.nn.functional as F

    if batch.shape[-1] == size and batch.shape[-2] == size:
        return batch
    return F.interpolate(batch, size=(size, size), mode="bilinear", align_corners=False)
