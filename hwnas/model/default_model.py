"""The embedded default model: the tiny ``ofa-mbv3`` supernet trained on scikit-learn's digits, shipped in the package.

``tools/train_default.py`` reproduces the checkpoint; this module only finds and loads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from hwnas.model.accuracy import SubnetAccuracy
    from hwnas.model.checkpoint import CheckpointMetadata
    from hwnas.model.datasets import ImageData
    from hwnas.model.supernet import Supernet

DEFAULT_SUPERNET = "ofa-mbv3"
DEFAULT_PRESET = "tiny"
# The tiny preset with input resolutions 6-16 px instead of 16-32: below digits'
# native 8 px the image itself loses detail, so small subnets are cheaper *and*
# less accurate (a real trade-off), and the largest trains 4x faster.
DEFAULT_SETTINGS: dict[str, Any] = {"resolutions": (6, 8, 10, 12, 14, 16)}
DEFAULT_DATA = "digits"
CHECKPOINT_NAME = "default_supernet.pt"


class DefaultModel(NamedTuple):
    """The embedded supernet, its trained elastic module, the checkpoint metadata, and the data it was trained on."""

    supernet: Supernet
    module: torch.nn.Module
    metadata: CheckpointMetadata
    data: ImageData

    def accuracy(self) -> SubnetAccuracy:
        """A cached per-subnet accuracy evaluator on the default data."""
        from hwnas.model.accuracy import SubnetAccuracy

        return SubnetAccuracy(self.supernet, self.module, self.data)


def default_checkpoint_path() -> Path:
    """Where the shipped checkpoint lives inside the installed package."""
    path = Path(__file__).resolve().parent / "data" / CHECKPOINT_NAME
    if not path.is_file():
        raise ConfigError(
            f"the embedded default supernet is missing ({path})",
            hint="reinstall hwnas, or rebuild it with `python tools/train_default.py`",
        )
    return path


def load_default() -> DefaultModel:
    """Load the embedded default: supernet, elastic module (eval mode), metadata, and its digits splits."""
    from hwnas.model.checkpoint import load_checkpoint
    from hwnas.model.datasets import load_data_from_description

    supernet, module, metadata = load_checkpoint(
        default_checkpoint_path(), supernet=DEFAULT_SUPERNET
    )
    return DefaultModel(supernet, module, metadata, load_data_from_description(dict(metadata.data)))
