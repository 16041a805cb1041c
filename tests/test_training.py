"""Supernet training: the sandwich step, loss going down, extraction still exact, accuracy evaluator, ``hwnas train``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_runner import run_hwnas

from hwnas.errors import ConfigError
from hwnas.model.accuracy import SubnetAccuracy, check_data_fits, weights_digest
from hwnas.model.datasets import load_data
from hwnas.model.training import (
    TrainingConfig,
    TrainingProgress,
    soft_cross_entropy,
    train_supernet,
)
from hwnas.search_core.subnet_objectives import AccuracyProvider
from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3

# tiny preset cut down further so a step takes milliseconds
SMALL = {"resolutions": "8,12", "depths": "1,2", "kernel_sizes": "3,5", "expand_ratios": "2,3"}
SMALL_CLI = [f"--set={k}={v}" for k, v in SMALL.items()]
QUICK = TrainingConfig(
    epochs=1, max_steps=8, batch_size=32, random_subnets=1, lr=0.01, warmup_steps=0
)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return load_data("digits")


def small_supernet() -> OFAMobileNetV3:
    return OFAMobileNetV3.configure("tiny", SMALL)


def fresh_module(supernet: OFAMobileNetV3, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return supernet.build()


def batch_loss(supernet, module, subnet, x, y) -> float:
    """Cross-entropy with batch statistics (train-mode BN), without learning anything."""
    module.train()
    with torch.no_grad():
        loss = F.cross_entropy(supernet.forward(module, subnet, x), y)
    module.eval()
    return float(loss)


class Recorder(TrainingProgress):
    def __init__(self):
        self.calls = []

    def start(self, total_steps, steps_per_epoch):
        self.calls.append(("start", total_steps, steps_per_epoch))

    def step(self, step, epoch, losses):
        self.calls.append(("step", step, epoch))

    def epoch(self, report):
        self.calls.append(("epoch", report.epoch))

    def finish(self, result):
        self.calls.append(("finish", result.steps))


@pytest.fixture(scope="module")
def trained(digits):
    """A small supernet after a few sandwich steps, with losses on a fixed batch before and after."""
    supernet = small_supernet()
    module = fresh_module(supernet)
    x, y = digits.train.x[:128], digits.train.y[:128]
    ends = (supernet.space.smallest(), supernet.space.largest())
    before = [batch_loss(supernet, module, s, x, y) for s in ends]
    recorder = Recorder()
    result = train_supernet(supernet, module, digits, QUICK, progress=recorder)
    after = [batch_loss(supernet, module, s, x, y) for s in ends]
    return supernet, module, result, before, after, recorder


def test_a_few_sandwich_steps_reduce_the_loss_of_smallest_and_largest(trained):
    _, _, result, before, after, recorder = trained
    assert result.steps == 8 and len(result.epochs) == 1
    for b, a in zip(before, after, strict=True):
        assert a < b - 0.2, (before, after)
    assert result.epochs[0].teacher_loss < 2.5 and np.isfinite(result.epochs[0].student_loss)
    assert 0.0 <= result.smallest_accuracy <= 1.0 and 0.0 <= result.largest_accuracy <= 1.0
    assert recorder.calls[0] == ("start", 8, 40)
    assert [c for c in recorder.calls if c[0] == "step"] == [("step", i, 1) for i in range(1, 9)]
    assert recorder.calls[-2:] == [("epoch", 1), ("finish", 8)]


def test_extraction_stays_exact_after_training(trained, digits):
    supernet, module, *_ = trained
    assert all(p.is_contiguous() for p in module.parameters())  # channels-last was undone
    rng = np.random.default_rng(5)
    subnets = [supernet.space.smallest(), supernet.space.largest()] + [
        supernet.space.sample(rng) for _ in range(3)
    ]
    module.eval()
    x = digits.validation.x[:16]
    for subnet in subnets:
        static = supernet.extract(module, subnet)
        with torch.no_grad():
            expected = supernet.forward(module, subnet, x)
            got = static(supernet.adapt_input(x, subnet))
        assert (got - expected).abs().max().item() <= 1e-5, subnet


def test_training_is_seeded(digits):
    supernet = small_supernet()
    config = TrainingConfig(epochs=1, max_steps=2, batch_size=16, random_subnets=1)
    digests = []
    for _ in range(2):
        module = fresh_module(supernet)
        train_supernet(supernet, module, digits, config)
        digests.append(weights_digest(module))
    assert digests[0] == digests[1] != weights_digest(fresh_module(supernet))


def test_soft_cross_entropy_matches_hard_labels_for_one_hot_targets():
    logits = torch.randn(5, 4)
    labels = torch.tensor([0, 3, 1, 2, 3])
    soft = soft_cross_entropy(logits, F.one_hot(labels, 4).float())
    assert torch.allclose(soft, F.cross_entropy(logits, labels))
    assert soft_cross_entropy(logits, F.softmax(logits, 1)) < soft


@pytest.mark.parametrize(
    "field, value",
    [("epochs", 0), ("batch_size", 1), ("lr", 0.0), ("distill_weight", 1.5), ("max_steps", 0)],
)
def test_bad_training_settings_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        TrainingConfig(**{field: value})


def test_data_that_does_not_fit_the_supernet_is_rejected(tmp_path):
    supernet = small_supernet()
    module = supernet.build()
    rgb = tmp_path / "rgb.npz"
    np.savez(rgb, x=np.zeros((30, 3, 8, 8), np.float32), y=np.arange(30) % 3)
    with pytest.raises(ConfigError, match="3 channel") as info:
        train_supernet(supernet, module, load_data(rgb), QUICK)
    assert "in_channels=3" in info.value.hint
    many = tmp_path / "many.npz"
    np.savez(many, x=np.zeros((120, 8, 8), np.float32), y=np.arange(120) % 12)
    with pytest.raises(ConfigError, match="12 classes"):
        check_data_fits(supernet, module, load_data(many))


def test_subnet_accuracy_recalibrates_caches_and_fingerprints(trained, digits):
    supernet, module, result, *_ = trained
    accuracy = SubnetAccuracy(supernet, module, digits)
    smallest = supernet.space.smallest()
    assert accuracy(smallest) == pytest.approx(result.smallest_accuracy)
    assert accuracy(smallest.to_dict()) == accuracy(smallest) and len(accuracy) == 1
    # the supernet's shared BN statistics are left alone by evaluation
    state = {k: v.clone() for k, v in module.state_dict().items()}
    accuracy(supernet.space.largest())
    assert all(torch.equal(state[k], v) for k, v in module.state_dict().items())
    assert len(accuracy) == 2
    metrics = AccuracyProvider(accuracy, accuracy.fingerprint).measure(supernet.space.largest())
    assert metrics.values["accuracy"] == pytest.approx(result.largest_accuracy)
    fingerprint = accuracy.fingerprint
    other = SubnetAccuracy(supernet, fresh_module(supernet, seed=1), digits)
    assert other.fingerprint != fingerprint and other.fingerprint.startswith("accuracy:ofa-mbv3:")


def test_cli_train_writes_a_loadable_checkpoint(tmp_path, builtin_plugin_host):
    from hwnas.model.checkpoint import load_checkpoint

    out = tmp_path / "ckpt.pt"
    result = run_hwnas(
        "train",
        "ofa-mbv3",
        "--preset",
        "tiny",
        *SMALL_CLI,
        "--epochs",
        "1",
        "--max-steps",
        "2",
        "--batch-size",
        "16",
        "--threads",
        "1",
        "--out",
        str(out),
        "--json",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 2 and summary["bytes"] == out.stat().st_size
    supernet, _, metadata = load_checkpoint(out)
    assert supernet.settings.resolutions == (8, 12)
    assert metadata.largest_accuracy == summary["largest_accuracy"] and metadata.epochs == 1


def test_cli_train_progress_prints_epoch_accuracies(tmp_path, capsys, builtin_plugin_host):
    from hwnas.cli import main

    main(
        [
            "train",
            "ofa-mbv3",
            *SMALL_CLI,
            "--epochs",
            "1",
            "--max-steps",
            "1",
            "--batch-size",
            "16",
            "--out",
            str(tmp_path / "c.pt"),
        ]
    )
    out = capsys.readouterr().out
    assert "epoch 1/1" in out and "validation accuracy smallest" in out and "largest" in out
    assert f"wrote {tmp_path / 'c.pt'}" in out and (tmp_path / "c.pt").is_file()


def test_cli_train_bad_data_path_exits_2(tmp_path):
    result = run_hwnas(
        "train",
        "ofa-mbv3",
        "--epochs",
        "1",
        "--out",
        str(tmp_path / "c.pt"),
        "--data",
        "/no/such/folder",
    )
    assert result.returncode == 2, result.stderr
    assert (
        "data path /no/such/folder does not exist" in result.stderr
        and "Traceback" not in result.stderr
    )
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--set", "no_such_setting=1"], "no setting 'no_such_setting'"),
        (["--set", "resolutions"], "expected FIELD=VALUE"),
        (["--preset", "huge"], "no preset 'huge'"),
    ],
)
def test_cli_train_bad_options_exit_2(tmp_path, capsys, builtin_plugin_host, args, message):
    from hwnas.cli import main

    with pytest.raises(SystemExit) as info:
        main(["train", "ofa-mbv3", "--epochs", "1", "--out", str(tmp_path / "c.pt"), *args])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "c.pt").exists()
