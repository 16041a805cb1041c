"""Trained-supernet checkpoints: weights plus metadata (supernet, space, data, training, accuracies).

The one reader and writer of checkpoint files: ``torch.save`` of
``{format, arguments, state_dict, metadata}``, written atomically, read with
``weights_only=True`` (no pickled code runs), with clear errors for wrong or damaged files.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError, UnknownNameError

CHECKPOINT_FORMAT = "hwnas-supernet/1"

if TYPE_CHECKING:
    import torch

    from hwnas.model.datasets import ImageData
    from hwnas.model.supernet import Supernet
    from hwnas.model.text_data import TextData
    from hwnas.model.training import TrainingResult

#: Tensors a text checkpoint carries so that a search scores subnets without the tokenizer or the teacher.
EVALUATION_KEYS = ("calibration_x", "validation_x", "validation_y", "teacher")


@dataclass(frozen=True)
class CheckpointMetadata:
    """What a checkpoint holds and how it was made; accuracies are validation top-1 with BN recalibrated."""

    supernet: str
    arguments: Mapping[str, Any] = field(default_factory=dict, hash=False)
    space_signature: str = ""
    weights: str = ""
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)
    epochs: int = 0
    smallest_accuracy: float | None = None
    largest_accuracy: float | None = None
    training: Mapping[str, Any] = field(default_factory=dict, hash=False)
    hwnas_version: str = ""
    created: str = ""
    #: What ``smallest_accuracy``/``largest_accuracy`` measure: ``accuracy`` or ``fidelity``.
    metric: str = "accuracy"
    #: For a supernet built with ``--from-pretrained``: the model it wraps and how it was sliced.
    pretrained: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckpointMetadata:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})


def save_checkpoint(
    path: str | Path,
    supernet: Supernet,
    module: torch.nn.Module,
    *,
    data: ImageData | TextData | None = None,
    result: TrainingResult | None = None,
    pretrained: Mapping[str, Any] | None = None,
) -> CheckpointMetadata:
    """Write ``module``'s weights with metadata about the supernet, the data and the training run.

    Text data is stored with it (calibration and validation token ids, labels,
    the pretrained model's validation outputs): a search needs no tokenizer.
    """
    import hwnas
    from hwnas.model.accuracy import weights_digest

    metadata = CheckpointMetadata(
        supernet=supernet.name,
        arguments=supernet.arguments,
        space_signature=supernet.space.signature,
        weights=weights_digest(module),
        data=dict(data.description) if data is not None else {},
        epochs=len(result.epochs) if result is not None else 0,
        smallest_accuracy=result.smallest_accuracy if result and result.epochs else None,
        largest_accuracy=result.largest_accuracy if result and result.epochs else None,
        training=result.to_dict() if result and result.epochs else {},
        hwnas_version=hwnas.__version__,
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        metric=result.metric if result is not None else "accuracy",
        pretrained=dict(pretrained or {}),
    )
    extra: dict[str, Any] = {"metadata": metadata.to_dict()}
    if data is not None and data.description.get("kind") == "text":
        extra["evaluation"] = {
            "calibration_x": data.calibration.x,
            "validation_x": data.validation.x,
            "validation_y": data.validation.y,
            **({"teacher": data.teacher} if getattr(data, "teacher", None) is not None else {}),
        }
    write_checkpoint(path, supernet, module, **extra)
    return metadata


def write_checkpoint(
    path: str | Path, supernet: Supernet, module: torch.nn.Module, **extra: Any
) -> Path:
    """Write ``{format, arguments, state_dict, **extra}`` atomically: a temporary file renamed into place."""
    import os
    import tempfile

    import torch

    path = Path(path)
    check_writable(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(
            {
                "format": CHECKPOINT_FORMAT,
                "arguments": supernet.arguments,
                "state_dict": module.state_dict(),
                **extra,
            },
            tmp,
        )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def check_writable(path: str | Path) -> None:
    """Raise :class:`ConfigError` now (before hours of training) if a checkpoint cannot be written at ``path``."""
    import os

    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--out {path} is a directory", hint="give a file path, e.g. runs/net.pt")
    parent = path.parent
    existing = next((p for p in (parent, *parent.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(f"--out {path}: {existing} is a file, not a directory")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot create {parent} ({exc.strerror})") from None
    if not os.access(parent, os.W_OK):
        raise ConfigError(
            f"--out {path}: {parent} is not writable", hint="choose a folder you can write to"
        )


def load_checkpoint(
    path: str | Path, *, supernet: str | None = None
) -> tuple[Supernet, torch.nn.Module, CheckpointMetadata]:
    """Rebuild the supernet, its elastic module (eval mode) with the weights, and the metadata.

    ``supernet`` names the supernet the caller expects; a checkpoint of another raises.
    """
    from hwnas.registry import supernet_class

    path = Path(path)
    blob = _read(path)
    if blob.get("format") != CHECKPOINT_FORMAT or not isinstance(blob.get("arguments"), Mapping):
        raise ConfigError(
            f"{path} is not an hwnas supernet checkpoint (format {blob.get('format')!r})",
            hint="write checkpoints with `hwnas train`",
        )
    arguments = blob["arguments"]
    name = str(arguments.get("supernet"))
    if supernet is not None and supernet != name:
        raise ConfigError(
            f"checkpoint {path} holds supernet {name!r}, not {supernet!r}",
            hint="pass the checkpoint trained for that supernet, or drop the supernet name",
        )
    try:
        cls = supernet_class(name)
    except UnknownNameError as exc:
        raise UnknownNameError(
            f"checkpoint {path} needs supernet {name!r}, which no installed plugin registers",
            hint=exc.hint,
        ) from None
    raw = blob.get("metadata")
    metadata = (
        CheckpointMetadata.from_dict(raw)
        if isinstance(raw, Mapping)
        else CheckpointMetadata(name, arguments)
    )
    model = cls.from_arguments(arguments)
    if metadata.space_signature and metadata.space_signature != model.space.signature:
        raise ConfigError(
            f"checkpoint {path}: supernet {name!r} now builds a different search space "
            f"(signature {model.space.signature}, checkpoint {metadata.space_signature})",
            hint="the supernet plugin changed since training; retrain with `hwnas train` or install the old version",
        )
    state = blob.get("state_dict")
    if not isinstance(state, Mapping):
        raise ConfigError(
            f"checkpoint {path} has no state_dict",
            hint="the file is damaged; retrain or copy it again",
        )
    module = model.build()
    model.load_state_dict(module, state, where=f"checkpoint {path}")
    return model, module.eval(), metadata


def load_evaluation_data(path: str | Path, metadata: CheckpointMetadata) -> TextData | None:
    """The text data stored with a checkpoint (see :func:`save_checkpoint`), or ``None`` for image checkpoints."""
    import torch

    from hwnas.model.datasets import ImageSet
    from hwnas.model.text_data import TextData

    path = Path(path)
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return None  # load_checkpoint already reported an unreadable file
    stored = blob.get("evaluation") if isinstance(blob, Mapping) else None
    if not isinstance(stored, Mapping):
        return None
    missing = [k for k in EVALUATION_KEYS[:3] if k not in stored]
    if missing:
        raise ConfigError(
            f"checkpoint {path}: its stored text data lacks {', '.join(missing)}",
            hint="the file is damaged; retrain with `hwnas train --from-pretrained`",
        )
    x, y = stored["calibration_x"], stored["validation_x"]
    description = dict(metadata.data)
    return TextData(
        name=str(description.get("source", "text")),
        num_classes=len(description.get("classes") or []),
        train=ImageSet(x[:0], torch.zeros(0, dtype=torch.int64)),
        calibration=ImageSet(x, torch.zeros(len(x), dtype=torch.int64)),
        validation=ImageSet(y, stored["validation_y"]),
        description=description,
        teacher=stored.get("teacher"),
    )


def checkpoint_sha256(path: str | Path) -> str:
    """SHA-256 of the checkpoint file's bytes, for manifests."""
    from hwnas.digests import sha256_file

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"checkpoint {path} does not exist")
    return sha256_file(path)


def _read(path: Path) -> Mapping[str, Any]:
    import torch

    if not path.is_file():
        raise ConfigError(
            f"checkpoint {path} does not exist", hint="train one with `hwnas train ... --out PATH`"
        )
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(
            f"checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''})",
            hint="the file is truncated or corrupted, or not a torch checkpoint; retrain or copy it again",
        ) from None
    if not isinstance(blob, Mapping):
        raise ConfigError(
            f"{path} is not an hwnas supernet checkpoint (holds a {type(blob).__name__})"
        )
    return blob
