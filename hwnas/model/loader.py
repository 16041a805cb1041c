"""Where a command's supernet comes from: the embedded default, a checkpoint, or a named (untrained) supernet.

Every CLI command that takes ``--supernet/--preset/--checkpoint`` loads through
:func:`load_supernet`, so the three sources behave the same everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from hwnas.model.checkpoint import CheckpointMetadata
    from hwnas.model.datasets import ImageData
    from hwnas.model.supernet import Supernet
    from hwnas.model.text_data import TextData

DEFAULT = "default"


@dataclass(frozen=True)
class LoadedSupernet:
    """A supernet with its elastic module; ``checkpoint`` is the weights file (``None``: untrained)."""

    supernet: Supernet
    module: torch.nn.Module
    checkpoint: Path | None
    metadata: CheckpointMetadata | None
    source: str

    def data(self, override: str | Path | None = None) -> ImageData | TextData:
        """The data accuracy is measured on: ``override``, else what the checkpoint was trained on, else digits.

        A text checkpoint carries its tokenised calibration and validation text
        (and the pretrained model's outputs on it), which is what it is scored on.
        """
        from hwnas.model.checkpoint import load_evaluation_data
        from hwnas.model.datasets import load_data, load_data_from_description

        stored = (
            load_evaluation_data(self.checkpoint, self.metadata)
            if self.checkpoint is not None and self.metadata is not None
            else None
        )
        if stored is not None:
            if override is not None:
                raise ConfigError(
                    f"{self.source} is scored on the text stored with it; --data does not apply",
                    hint="fine-tune on other text with `hwnas train --from-pretrained ... --data FILE`",
                )
            return stored
        if override is not None:
            return load_data(override)
        if self.metadata is not None and self.metadata.data:
            return load_data_from_description(dict(self.metadata.data))
        return load_data("digits")

    @property
    def metric(self) -> str:
        """What this supernet's subnets are scored by: ``accuracy``, or ``fidelity`` (embedding encoders)."""
        return self.metadata.metric if self.metadata is not None else "accuracy"

    def describe(self) -> dict[str, Any]:
        """What a run stores so that ``hwnas export RUN_DIR`` loads the same model again."""
        from hwnas.model.checkpoint import checkpoint_sha256

        return {
            "source": self.source,
            "supernet": self.supernet.arguments,
            "checkpoint": str(self.checkpoint.resolve()) if self.checkpoint else None,
            "checkpoint_sha256": checkpoint_sha256(self.checkpoint) if self.checkpoint else None,
        }


def load_supernet(
    name: str | None = None,
    *,
    preset: str | None = None,
    overrides: Mapping[str, str] | None = None,
    checkpoint: str | Path | None = None,
) -> LoadedSupernet:
    """The one way a supernet is loaded: from ``checkpoint``, else ``name`` (untrained), else the embedded default.

    A checkpoint fixes the architecture, so ``preset`` and ``overrides`` cannot
    be combined with it; ``name`` then only states which supernet it must hold.
    ``overrides`` are settings fields as text (the CLI's ``--set``).
    """
    from hwnas.model.checkpoint import load_checkpoint

    if checkpoint is not None:
        if preset is not None or overrides:
            raise ConfigError(
                f"checkpoint {checkpoint} fixes the supernet's architecture, "
                "so --preset/--set cannot change it",
                hint="drop --preset/--set, or train a checkpoint with those settings",
            )
        path = Path(checkpoint)
        supernet, module, metadata = load_checkpoint(
            path, supernet=name if name != DEFAULT else None
        )
        return LoadedSupernet(supernet, module, path, metadata, f"checkpoint {path}")
    if name is not None and name != DEFAULT:
        from hwnas.registry import supernet_class

        supernet = supernet_class(name).configure(preset, overrides)
        return LoadedSupernet(
            supernet,
            supernet.build().eval(),
            None,
            None,
            f"{name} ({supernet.preset or 'custom'}, untrained)",
        )
    if preset is not None or overrides:
        raise ConfigError(
            "--preset/--set need a supernet name",
            hint="e.g. --supernet ofa-mbv3 --preset full; the embedded default is fixed",
        )
    from hwnas.model.default_model import default_checkpoint_path

    path = default_checkpoint_path()
    supernet, module, metadata = load_checkpoint(path)
    return LoadedSupernet(supernet, module, path, metadata, "embedded default")


def from_description(description: dict[str, Any]) -> LoadedSupernet:
    """Inverse of :meth:`LoadedSupernet.describe` (how export reloads a run's model)."""
    if description.get("checkpoint"):
        from hwnas.model.checkpoint import checkpoint_sha256

        path = Path(description["checkpoint"])
        expected = description.get("checkpoint_sha256")
        if not path.is_file():
            raise ConfigError(
                f"the run's checkpoint {path} no longer exists",
                hint="export with --subnet FILE --checkpoint PATH to a copy of those weights",
            )
        if expected and checkpoint_sha256(path) != expected:
            raise ConfigError(
                f"checkpoint {path} changed since the search ran (sha256 differs), so its subnets and accuracies no longer hold",
                hint="search again with the new weights, or export with --checkpoint pointing at the original file",
            )
        return load_supernet(checkpoint=path)
    from hwnas.registry import supernet_class

    arguments = description.get("supernet") or {}
    supernet = supernet_class(str(arguments.get("supernet"))).from_arguments(arguments)
    return LoadedSupernet(
        supernet, supernet.build().eval(), None, None, description.get("source", "")
    )
