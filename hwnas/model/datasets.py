"""Image-classification data for training and accuracy: digits, an image folder, or an ``.npz``.

Loads into memory, normalises, splits deterministically into train / calibration /
validation, and batches. Resizing to a subnet's resolution is the supernet's ``adapt_input``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
SPLIT_FRACTIONS = {"train": 0.7, "calibration": 0.1, "validation": 0.2}
_MAX_FOLDER_SIDE = 128
_DATA_HINT = "pass --data digits, a folder with one sub-folder of images per class, or an .npz with arrays x and y"


@dataclass(frozen=True, eq=False)
class ImageSet:
    """One split in memory: ``x`` float32 (N, C, H, W), normalised; ``y`` int64 class indices."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def batches(
        self, batch_size: int, *, shuffle: bool = False, seed: int = 0
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Yield ``(x, y)`` batches at the stored size; ``Supernet.adapt_input`` resizes them per subnet."""
        import torch

        if batch_size < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        if shuffle:
            generator = torch.Generator().manual_seed(seed)
            order = torch.randperm(len(self), generator=generator)
        else:
            order = torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            index = order[start : start + batch_size]
            yield self.x[index], self.y[index]


class ThreeSplits:
    """Access to a dataset's ``train`` / ``calibration`` / ``validation`` splits by name."""

    def split(self, name: str) -> ImageSet:
        if name not in SPLIT_FRACTIONS:
            raise ConfigError(
                f"unknown data split {name!r}", hint=f"splits: {', '.join(SPLIT_FRACTIONS)}"
            )
        return getattr(self, name)


@dataclass(frozen=True, eq=False)
class ImageData(ThreeSplits):
    """A dataset split three ways, with what a checkpoint needs to rebuild it exactly."""

    name: str
    num_classes: int
    channels: int
    train: ImageSet
    calibration: ImageSet
    validation: ImageSet
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.train.x.shape[2]), int(self.train.x.shape[3])

    def summary(self) -> str:
        h, w = self.image_size
        return (
            f"{self.name}: {self.num_classes} classes, {self.channels}x{h}x{w}, "
            f"{len(self.train)} train / {len(self.calibration)} calibration / {len(self.validation)} validation"
        )


def load_data(source: str | Path, *, seed: int = 0) -> ImageData:
    """Load ``"digits"``, a folder of images per class, or an ``.npz``; split deterministically by ``seed``."""
    text = str(source)
    if text == "digits":
        x, y, classes, origin = _digits()
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise ConfigError(f"data path {path} does not exist", hint=_DATA_HINT)
        if path.is_dir():
            x, y, classes, origin = _image_folder(path)
        elif path.suffix.lower() == ".npz":
            x, y, classes, origin = _npz(path)
        else:
            raise ConfigError(
                f"data path {path}: unsupported file type {path.suffix or '(none)'!r}",
                hint=_DATA_HINT,
            )
    return _split(
        text if text == "digits" else str(Path(text).expanduser().resolve()),
        x,
        y,
        classes,
        origin,
        seed,
    )


def load_data_from_description(description: dict[str, Any]) -> ImageData:
    """Rebuild the exact data a checkpoint was trained on from its stored description."""
    try:
        source, seed = description["source"], int(description["seed"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"data description {description!r} lacks 'source' and 'seed'",
            hint="the checkpoint was not written by hwnas train; pass --data explicitly",
        ) from None
    return load_data(source, seed=seed)


# -- sources -------------------------------------------------------------------


def _digits() -> tuple[np.ndarray, np.ndarray, list[str], str]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = bunch.images.astype(np.float32)[:, None, :, :] / 16.0
    return (
        x,
        bunch.target.astype(np.int64),
        [str(c) for c in bunch.target_names],
        "sklearn.datasets.load_digits",
    )


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    try:
        archive = np.load(path, allow_pickle=False)
        arrays = {name: archive[name] for name in archive.files}
    except Exception as exc:
        raise ConfigError(
            f"{path}: cannot read as .npz ({exc})",
            hint="write it with numpy.savez(path, x=images, y=labels)",
        ) from None
    missing = [name for name in ("x", "y") if name not in arrays]
    if missing:
        raise ConfigError(
            f"{path}: missing array(s) {', '.join(missing)}; found {', '.join(arrays) or 'none'}",
            hint="save images as x (N,C,H,W or N,H,W) and integer labels as y (N,)",
        )
    x, y = arrays["x"], arrays["y"]
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise ConfigError(f"{path}: x has shape {x.shape}; expected (N,C,H,W) or (N,H,W)")
    if x.shape[3] in (1, 3) and x.shape[1] not in (1, 3):
        raise ConfigError(
            f"{path}: x has shape {x.shape}, which looks channels-last",
            hint="transpose to (N,C,H,W), e.g. x.transpose(0, 3, 1, 2)",
        )
    if y.ndim != 1 or y.shape[0] != x.shape[0]:
        raise ConfigError(f"{path}: y has shape {y.shape}; expected ({x.shape[0]},) to match x")
    if not np.issubdtype(y.dtype, np.integer):
        raise ConfigError(f"{path}: y has dtype {y.dtype}; expected integer class indices")
    if y.min() < 0:
        raise ConfigError(f"{path}: y has negative labels; expected class indices 0..K-1")
    if not np.issubdtype(x.dtype, np.number):
        raise ConfigError(f"{path}: x has dtype {x.dtype}; expected numbers")
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    classes = [str(c) for c in range(int(y.max()) + 1)]
    return x.astype(np.float32) / scale, y.astype(np.int64), classes, str(path)


def _image_folder(root: Path) -> tuple[np.ndarray, np.ndarray, list[str], str]:
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError(
            "reading an image folder needs Pillow", hint="pip install pillow"
        ) from None

    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise ConfigError(
            f"{root}: found {len(class_dirs)} class folder(s); need at least 2",
            hint="lay out ROOT/CLASS_NAME/image.png, one sub-folder per class",
        )
    files: list[tuple[Path, int]] = []
    for label, folder in enumerate(class_dirs):
        found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise ConfigError(
                f"{folder}: no images ({', '.join(IMAGE_SUFFIXES)})",
                hint="remove the folder or add images",
            )
        files.extend((p, label) for p in found)
    images = []
    for path, _ in files:
        try:
            with Image.open(path) as image:
                image.load()
                images.append(image.copy())
        except Exception as exc:
            raise ConfigError(
                f"{path}: not a readable image ({exc})", hint="remove or replace the file"
            ) from None
    grey = all(image.mode in ("1", "L", "I", "I;16", "F") for image in images)
    mode = "L" if grey else "RGB"
    sizes = {image.size for image in images}
    # One stored size; batches are resized to the subnet's resolution anyway.
    width, height = sizes.pop() if len(sizes) == 1 else (64, 64)
    side_scale = min(1.0, _MAX_FOLDER_SIDE / max(width, height))
    size = (max(1, round(width * side_scale)), max(1, round(height * side_scale)))
    arrays = []
    for image in images:
        image = image.convert(mode)
        if image.size != size:
            image = image.resize(size, Image.BILINEAR)
        array = np.asarray(image, dtype=np.float32) / 255.0
        arrays.append(array[None] if array.ndim == 2 else array.transpose(2, 0, 1))
    labels = np.array([label for _, label in files], dtype=np.int64)
    return np.stack(arrays), labels, [p.name for p in class_dirs], str(root)


# -- splitting -----------------------------------------------------------------


def _split(
    source: str, x: np.ndarray, y: np.ndarray, classes: list[str], origin: str, seed: int
) -> ImageData:
    """Stratified, seeded split; normalised with the train split's per-channel mean and std."""
    import torch

    if len(y) < 10:
        raise ConfigError(
            f"data {source}: only {len(y)} examples; need at least 10 to split three ways"
        )
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {name: [] for name in SPLIT_FRACTIONS}
    for label in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == label))
        # every split gets one of each class that has three or more examples
        least = 1 if len(members) >= 3 else 0
        n_val = max(least, int(round(len(members) * SPLIT_FRACTIONS["validation"])))
        n_cal = max(least, int(round(len(members) * SPLIT_FRACTIONS["calibration"])))
        parts["validation"].extend(members[:n_val])
        parts["calibration"].extend(members[n_val : n_val + n_cal])
        parts["train"].extend(members[n_val + n_cal :])
    empty = [name for name, index in parts.items() if not index]
    if empty:
        raise ConfigError(
            f"data {source}: split(s) {', '.join(empty)} came out empty",
            hint="provide more examples per class",
        )
    train_x = x[np.sort(parts["train"])]
    mean = train_x.mean(axis=(0, 2, 3), keepdims=True)
    std = train_x.std(axis=(0, 2, 3), keepdims=True) + 1e-6

    def subset(name: str) -> ImageSet:
        index = np.sort(np.asarray(parts[name], dtype=np.int64))
        xs = torch.from_numpy(np.ascontiguousarray((x[index] - mean) / std, dtype=np.float32))
        return ImageSet(xs, torch.from_numpy(y[index].astype(np.int64)))

    name = "digits" if source == "digits" else Path(source).name
    description = {
        "source": source,
        "origin": origin,
        "seed": seed,
        "classes": classes,
        "examples": int(len(y)),
        "splits": {k: len(v) for k, v in parts.items()},
        "shape": list(x.shape[1:]),
    }
    return ImageData(
        name=name,
        num_classes=len(classes),
        channels=int(x.shape[1]),
        train=subset("train"),
        calibration=subset("calibration"),
        validation=subset("validation"),
        description=description,
    )
