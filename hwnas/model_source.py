"""Where a command's supernet comes from: the embedded default, a checkpoint, or a named supernet.

Every CLI command that takes ``--supernet/--preset/--checkpoint`` loads through
:func:`load_supernet`, so the three sources behave the same everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from hwnas.supernet import Supernet

DEFAULT = "default"


@dataclass(frozen=True)
class LoadedSupernet:
    """A supernet with its elastic module; ``checkpoint`` is the weights file (``None``: untrained)."""

    supernet: Supernet
    module: torch.nn.Module
    checkpoint: Path | None
    trained: bool
    source: str

    def describe(self) -> dict[str, Any]:
        """What to store with a run so that export can load the same model again."""
        return {
            "source": self.source,
            "supernet": self.supernet.arguments,
            "checkpoint": str(self.checkpoint) if self.checkpoint else None,
        }


def load_supernet(
    name: str | None = None, *, preset: str | None = None, checkpoint: str | Path | None = None
) -> LoadedSupernet:
    """Load a supernet: ``checkpoint`` wins; else ``name`` (untrained, from a preset); else the embedded default."""
    from hwnas.registry import supernet_class

    if checkpoint is not None:
        path = Path(checkpoint)
        arguments = _checkpoint_arguments(path)
        cls = supernet_class(str(arguments.get("supernet")))
        if name is not None and name != cls.name:
            raise ConfigError(f"checkpoint {path} holds supernet {cls.name!r}, not {name!r}",
                              hint="drop --supernet, or pass the matching checkpoint")
        supernet, module = cls.load_checkpoint(path)
        return LoadedSupernet(supernet, module.eval(), path, True, f"checkpoint {path}")
    if name is not None and name != DEFAULT:
        cls = supernet_class(name)
        supernet = cls.configure(preset)
        return LoadedSupernet(supernet, supernet.build().eval(), None, False, f"{name} ({supernet.preset}, untrained)")
    from hwnas.default_model import default_checkpoint_path

    path = default_checkpoint_path()
    loaded = load_supernet(checkpoint=path)
    return LoadedSupernet(loaded.supernet, loaded.module, path, True, "embedded default")


def from_description(description: dict[str, Any]) -> LoadedSupernet:
    """Inverse of :meth:`LoadedSupernet.describe` (how export reloads a run's model)."""
    if description.get("checkpoint"):
        return load_supernet(checkpoint=description["checkpoint"])
    arguments = description.get("supernet") or {}
    from hwnas.registry import supernet_class

    cls = supernet_class(str(arguments.get("supernet")))
    supernet = cls.from_arguments(arguments)
    return LoadedSupernet(supernet, supernet.build().eval(), None, False, description.get("source", ""))


def _checkpoint_arguments(path: Path) -> dict[str, Any]:
    import torch

    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"{path} cannot be read as a checkpoint: {type(exc).__name__}: {str(exc)[:200]}",
                          hint="was it truncated or written by another tool?") from None
    if not isinstance(data, dict) or not isinstance(data.get("arguments"), dict):
        raise ConfigError(f"{path} is not an hwnas supernet checkpoint (no 'arguments')")
    return data["arguments"]
