"""Bad input from the command line gets one or two clear lines and exit code 2, never a traceback."""

from __future__ import annotations

import json

import pytest
from cli_runner import run_hwnas


def _expect_exit_2(result, message: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe\x00garbage", "not UTF-8 text"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b"{", "not valid JSON"),
    ],
)
def test_ir_rejects_unreadable_subnet_files(tmp_path, content, message):
    path = tmp_path / "subnet.json"
    path.write_bytes(content)
    _expect_exit_2(run_hwnas("ir", "ofa-mbv3", str(path)), message)


def test_ir_rejects_a_directory_as_subnet_file(tmp_path):
    _expect_exit_2(run_hwnas("ir", "ofa-mbv3", str(tmp_path)), "is a directory")


def test_a_checkpoint_that_is_not_one(tmp_path):
    subnet = tmp_path / "subnet.json"
    subnet.write_text(json.dumps({"space": "ofa-mbv3", "config": {}}))
    fake = tmp_path / "weights.pt"
    fake.write_bytes(b"not a torch file at all" * 10)
    _expect_exit_2(
        run_hwnas("ir", "ofa-mbv3", str(subnet), "--checkpoint", str(fake)), "cannot be read"
    )


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tvm-rpc:aarch64@127.0.0.1:99999", "port 99999 is not in 1..65535"),
        ("tvm-rpc:aarch64@127.0.0.1:http", "port 'http' is not a number"),
        ("onnxruntime:cpu?threads=1&threads=2", "sets threads more than once"),
        ("onnxruntime:cpu?threads=99999", "must be >= 1 and <= 1024"),
    ],
)
def test_bad_target_specs(tmp_path, spec, message):
    subnet = tmp_path / "subnet.json"
    subnet.write_text(json.dumps({"space": "ofa-mbv3", "config": {}}))
    _expect_exit_2(run_hwnas("bench", "ofa-mbv3", str(subnet), "--targets", spec), message)


def test_export_pick_on_a_metric_the_run_lacks(tmp_path):
    run = tmp_path / "run"
    searched = run_hwnas(
        "search", "--target", "onnxruntime:cpu?threads=1", "--objectives", "accuracy,macs",
        "--budget", "2", "--out", str(run), "--quiet",
    )  # fmt: skip
    assert searched.returncode == 0, searched.stderr
    _expect_exit_2(
        run_hwnas(
            "export",
            str(run),
            "--pick",
            "max accuracy where latency<=5ms",
            "--target",
            "onnxruntime:cpu",
            "--out",
            str(tmp_path / "a"),
        ),  # fmt: skip
        "this run has no metric 'latency'",
    )
