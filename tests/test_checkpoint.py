"""Checkpoints: save/load round trip with metadata, clear errors for wrong or damaged files, and the shipped default."""

from __future__ import annotations

import hashlib

import pytest
import torch

from hwnas.errors import ConfigError, UnknownNameError
from hwnas.model.accuracy import weights_digest
from hwnas.model.checkpoint import checkpoint_sha256, load_checkpoint, save_checkpoint
from hwnas.model.datasets import load_data
from hwnas.model.training import TrainingConfig, train_supernet
from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3

SMALL = {"resolutions": "8,12", "depths": "1,2", "kernel_sizes": "3,5", "expand_ratios": "2,3"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A small supernet trained for two steps and saved, with the objects it was saved from."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    supernet = OFAMobileNetV3.configure("tiny", SMALL)
    torch.manual_seed(0)
    module = supernet.build()
    data = load_data("digits", seed=2)
    result = train_supernet(
        supernet, module, data, TrainingConfig(epochs=1, max_steps=2, batch_size=16)
    )
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    metadata = save_checkpoint(path, supernet, module, data=data, result=result)
    torch.set_num_threads(threads)
    return path, supernet, module, data, result, metadata


def test_round_trip_keeps_weights_settings_and_metadata(saved, builtin_plugin_host):
    path, supernet, module, data, result, written = saved
    loaded, loaded_module, metadata = load_checkpoint(path, supernet="ofa-mbv3")
    assert metadata == written
    assert (
        loaded.arguments == supernet.arguments
        and loaded.space.signature == supernet.space.signature
    )
    assert weights_digest(loaded_module) == weights_digest(module) == metadata.weights
    assert not loaded_module.training
    assert metadata.data["source"] == "digits" and metadata.data["seed"] == 2
    assert metadata.epochs == 1 and metadata.training["steps"] == 2
    assert (metadata.smallest_accuracy, metadata.largest_accuracy) == (
        result.smallest_accuracy,
        result.largest_accuracy,
    )
    assert metadata.hwnas_version and metadata.created.endswith("+00:00")
    # the one loader every command uses reads it the same way
    from hwnas.model.loader import load_supernet

    assert weights_digest(load_supernet(checkpoint=path).module) == metadata.weights


def test_sha256_is_of_the_file_bytes(saved, tmp_path):
    path = saved[0]
    assert checkpoint_sha256(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    copy = tmp_path / "copy.pt"
    copy.write_bytes(path.read_bytes() + b"\0")
    assert checkpoint_sha256(copy) != checkpoint_sha256(path)
    with pytest.raises(ConfigError, match="does not exist"):
        checkpoint_sha256(tmp_path / "missing.pt")


def test_damaged_or_foreign_files_raise_config_errors(saved, tmp_path, builtin_plugin_host):
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(saved[0].read_bytes()[:5000])
    with pytest.raises(ConfigError, match="cannot be read") as info:
        load_checkpoint(truncated)
    assert "corrupted" in info.value.hint
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ConfigError, match="not an hwnas supernet checkpoint"):
        load_checkpoint(foreign)


def _rewrite(source, target, change):
    blob = torch.load(source, weights_only=True)
    change(blob)
    torch.save(blob, target)
    return target


def test_wrong_supernet_unknown_supernet_and_changed_space(saved, tmp_path, builtin_plugin_host):
    path = saved[0]
    with pytest.raises(ConfigError, match="holds supernet 'ofa-mbv3', not 'elastic-resnet'"):
        load_checkpoint(path, supernet="elastic-resnet")
    unknown = _rewrite(
        path, tmp_path / "unknown.pt", lambda b: b["arguments"].update(supernet="mystery-net")
    )
    with pytest.raises(UnknownNameError, match="needs supernet 'mystery-net'") as info:
        load_checkpoint(unknown)
    assert "ofa-mbv3" in info.value.hint
    moved = _rewrite(
        path, tmp_path / "moved.pt", lambda b: b["metadata"].update(space_signature="0" * 12)
    )
    with pytest.raises(ConfigError, match="different search space"):
        load_checkpoint(moved)
    first = next(iter(torch.load(path, weights_only=True)["state_dict"]))
    misfit = _rewrite(
        path, tmp_path / "misfit.pt", lambda b: b["state_dict"].update({first: torch.zeros(1)})
    )
    with pytest.raises(ConfigError, match="does not fit supernet"):
        load_checkpoint(misfit)


def test_shipped_default_loads_and_meets_its_accuracy_figures(builtin_plugin_host):
    from hwnas.model.default_model import DEFAULT_SETTINGS, default_checkpoint_path, load_default

    path = default_checkpoint_path()
    assert path.stat().st_size <= 3_000_000
    default = load_default()
    assert default.supernet.name == "ofa-mbv3" and default.supernet.preset == "tiny"
    assert default.supernet.settings.resolutions == DEFAULT_SETTINGS["resolutions"]
    assert default.data.name == "digits" and default.metadata.data["seed"] == 0
    accuracy = default.accuracy()
    space = default.supernet.space
    largest, smallest = accuracy(space.largest()), accuracy(space.smallest())
    assert largest >= 0.95
    assert smallest <= largest - 0.02
    assert (smallest, largest) == pytest.approx(
        (default.metadata.smallest_accuracy, default.metadata.largest_accuracy), abs=0.003
    )  # up to one validation image may flip with another thread count
