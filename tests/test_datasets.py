"""Training data: digits, .npz and image-folder loaders, deterministic splits, batching, and bad-data errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hwnas.errors import ConfigError
from hwnas.model.datasets import load_data, load_data_from_description


def test_digits_split_is_stratified_normalised_and_deterministic():
    data = load_data("digits", seed=3)
    assert (data.name, data.num_classes, data.channels, data.image_size) == (
        "digits",
        10,
        1,
        (8, 8),
    )
    sizes = [len(data.train), len(data.calibration), len(data.validation)]
    assert sum(sizes) == 1797 and sizes[0] > sizes[2] > sizes[1] > 100
    for split in (data.train, data.calibration, data.validation):
        assert set(split.y.tolist()) == set(range(10))
    assert abs(float(data.train.x.mean())) < 1e-4 and abs(float(data.train.x.std()) - 1) < 1e-2
    again = load_data("digits", seed=3)
    assert torch.equal(again.validation.x, data.validation.x) and torch.equal(
        again.train.y, data.train.y
    )
    other = load_data("digits", seed=4)
    assert not torch.equal(other.validation.y, data.validation.y)


def test_description_rebuilds_the_same_data():
    data = load_data("digits", seed=1)
    rebuilt = load_data_from_description(data.description)
    assert torch.equal(rebuilt.calibration.x, data.calibration.x)
    with pytest.raises(ConfigError, match="lacks 'source'"):
        load_data_from_description({"seed": 1})


def test_batches_cover_every_example_and_shuffle_by_seed():
    split = load_data("digits").validation
    plain = list(split.batches(100))
    assert [len(y) for _, y in plain][:-1] == [100] * (len(plain) - 1)
    assert torch.equal(torch.cat([y for _, y in plain]), split.y)
    shuffled = torch.cat([y for _, y in split.batches(100, shuffle=True, seed=7)])
    assert sorted(shuffled.tolist()) == sorted(split.y.tolist()) and not torch.equal(
        shuffled, split.y
    )
    assert torch.equal(
        shuffled, torch.cat([y for _, y in split.batches(100, shuffle=True, seed=7)])
    )
    with pytest.raises(ConfigError, match="batch size"):
        next(split.batches(0))


def test_npz_grey_uint8_and_channels_first_float(tmp_path):
    rng = np.random.default_rng(0)
    grey = tmp_path / "grey.npz"
    np.savez(grey, x=rng.integers(0, 256, (40, 6, 6), dtype=np.uint8), y=np.arange(40) % 4)
    data = load_data(grey)
    assert (data.num_classes, data.channels, data.image_size) == (4, 1, (6, 6))
    assert len(data.train) + len(data.calibration) + len(data.validation) == 40
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, x=rng.normal(size=(30, 3, 5, 7)).astype(np.float32), y=np.arange(30) % 3)
    data = load_data(str(rgb))
    assert (data.num_classes, data.channels, data.image_size) == (3, 3, (5, 7))
    assert data.train.x.dtype == torch.float32 and data.train.y.dtype == torch.int64


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"x": np.zeros((20, 4, 4))}, "missing array"),
        ({"x": np.zeros((20, 4, 4, 3)), "y": np.zeros(20, int)}, "channels-last"),
        ({"x": np.zeros((20, 4)), "y": np.zeros(20, int)}, "expected \\(N,C,H,W\\)"),
        ({"x": np.zeros((20, 4, 4)), "y": np.zeros(19, int)}, "to match x"),
        ({"x": np.zeros((20, 4, 4)), "y": np.zeros(20)}, "integer class indices"),
        ({"x": np.zeros((20, 4, 4)), "y": -np.ones(20, int)}, "negative labels"),
        ({"x": np.zeros((5, 4, 4)), "y": np.zeros(5, int)}, "at least 10"),
    ],
)
def test_bad_npz_says_what_is_wrong(tmp_path, arrays, match):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ConfigError, match=match) as info:
        load_data(path)
    assert str(path) in str(info.value) or "at least 10" in match


def test_unreadable_npz_missing_path_and_unknown_file_type(tmp_path):
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"not a zip archive")
    with pytest.raises(ConfigError, match="cannot read as .npz") as info:
        load_data(broken)
    assert info.value.hint and "savez" in info.value.hint
    with pytest.raises(ConfigError, match="does not exist") as info:
        load_data(tmp_path / "nowhere")
    assert "digits" in info.value.hint
    table = tmp_path / "table.csv"
    table.write_text("1,2\n")
    with pytest.raises(ConfigError, match="unsupported file type '.csv'"):
        load_data(table)


def _write_images(root, classes, per_class, mode, size=(6, 6), vary=False):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(per_class):
            w, h = (size[0] + i % 2, size[1]) if vary else size
            shape = (h, w) if mode == "L" else (h, w, 3)
            pixels = np.clip(rng.normal(40 * c, 10, shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode=mode).save(folder / f"{i}.png")


def test_image_folder_grey_and_rgb(tmp_path):
    _write_images(tmp_path / "grey", ["cat", "dog", "eel"], 5, "L")
    data = load_data(tmp_path / "grey")
    assert (data.num_classes, data.channels, data.image_size) == (3, 1, (6, 6))
    assert data.description["classes"] == ["cat", "dog", "eel"]
    # class 0 images are dark, class 2 bright: labels follow folder order
    means = {int(c): float(data.train.x[data.train.y == c].mean()) for c in range(3)}
    assert means[0] < means[1] < means[2]
    _write_images(tmp_path / "rgb", ["a", "b"], 6, "RGB", vary=True)
    data = load_data(tmp_path / "rgb")
    assert (data.num_classes, data.channels, data.image_size) == (2, 3, (64, 64))


def test_bad_image_folders(tmp_path):
    _write_images(tmp_path / "one", ["only"], 12, "L")
    with pytest.raises(ConfigError, match="need at least 2"):
        load_data(tmp_path / "one")
    _write_images(tmp_path / "empty", ["a"], 12, "L")
    (tmp_path / "empty" / "b").mkdir()
    with pytest.raises(ConfigError, match="no images") as info:
        load_data(tmp_path / "empty")
    assert str(tmp_path / "empty" / "b") in str(info.value)
    _write_images(tmp_path / "junk", ["a", "b"], 6, "L")
    (tmp_path / "junk" / "b" / "bad.png").write_bytes(b"nope")
    with pytest.raises(ConfigError, match="not a readable image") as info:
        load_data(tmp_path / "junk")
    assert "bad.png" in str(info.value)
