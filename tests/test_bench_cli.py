"""``hwnas bench`` run as a user runs it: subnets, ONNX files and torch factories on several targets."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cli_runner import run_hwnas

ONE_THREAD = "onnxruntime:cpu?threads=1"
FAST = ["--repeats", "5", "--min-repeat-ms", "2", "--warmup", "1"]


@pytest.fixture
def env(tmp_path):
    return {"HWNAS_CACHE_DIR": str(tmp_path / "cache"), "HWNAS_DISABLE_PLUGIN_AUTOLOAD": "1"}


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory) -> Path:
    import torch

    from hwnas.ir import GraphIR

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 4),
    ).eval()
    ir = GraphIR.from_module(net, (torch.randn(1, 3, 16, 16),), name="net")
    return ir.to_onnx(tmp_path_factory.mktemp("onnx") / "net.onnx")


def test_bench_onnx_on_two_targets_writes_table_json_and_plot(onnx_model, tmp_path, env):
    out, png = tmp_path / "bench.json", tmp_path / "bench.png"
    done = run_hwnas(
        "bench",
        "--onnx",
        str(onnx_model),
        "-t",
        f"{ONE_THREAD},onnxruntime:cpu?opt=basic",
        *FAST,
        "--json",
        str(out),
        "--plot",
        str(png),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "median ms" in done.stdout and "speed-up" in done.stdout
    document = json.loads(out.read_text())
    rows = document["results"]
    assert [r["target"] for r in rows] == [ONE_THREAD, "onnxruntime:cpu?opt=basic"]
    assert all(r["ok"] and r["median_ms"] > 0 and len(r["samples_s"]) == 5 for r in rows)
    assert rows[0]["speedup"] == 1.0 and rows[1]["speedup"] == pytest.approx(
        rows[0]["median_s"] / rows[1]["median_s"]
    )
    assert document["model"]["source"] == "onnx" and document["model"]["macs"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = run_hwnas("report", str(out), "--out", str(tmp_path / "bench.html"), env=env)
    assert report.returncode == 0, report.stderr  # `hwnas report` reads what bench writes
    page = (tmp_path / "bench.html").read_text()
    assert page.count('<tr data-ok="1">') == 2 and 'id="bench-chart-b0"' in page
    again = run_hwnas(
        "bench", "--onnx", str(onnx_model), "-t", ONE_THREAD, *FAST, "--json", str(out), env=env
    )
    assert json.loads(out.read_text())["results"][0]["cached"], again.stderr


def test_bench_a_subnet_of_a_builtin_supernet(tmp_path, env):
    from hwnas import registry

    net = registry.supernet_class("ofa-mbv3").configure("tiny", {})
    subnet = tmp_path / "subnet.json"
    subnet.write_text(net.space.smallest().to_json())
    done = run_hwnas(
        "bench",
        "ofa-mbv3",
        str(subnet),
        "--preset",
        "tiny",
        "-t",
        f"{ONE_THREAD},torch:cpu",
        "--threads",
        "1",
        *FAST,
        "--json",
        str(tmp_path / "b.json"),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [r["ok"] for r in rows] == [True, True]
    assert rows[1]["threads"] == 1 and rows[0]["max_abs_error"] < 1e-4


def test_bench_a_torch_factory(tmp_path, env):
    (tmp_path / "my_models.py").write_text(
        textwrap.dedent("""
        import torch
        def mlp():
            return torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.Tanh()).eval()
    """)
    )
    done = run_hwnas(
        "bench",
        "--torch",
        "my_models:mlp",
        "--shape",
        "4x16",
        "-t",
        ONE_THREAD,
        *FAST,
        env={**env, "PYTHONPATH": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr
    assert "mlp" in done.stdout and "4x16" in done.stdout


def test_unknown_target_exits_2_listing_what_is_available(onnx_model, env):
    done = run_hwnas(
        "bench", "--onnx", str(onnx_model), "-t", "onnxruntime:cpu,warp-drive:9", env=env
    )
    assert done.returncode == 2
    assert "unknown target 'warp-drive:9'" in done.stderr
    assert "available here:" in done.stderr and "onnxruntime:cpu" in done.stderr
    assert "Traceback" not in done.stderr


def test_unavailable_runtime_exits_2_with_the_reason(onnx_model, env):
    from hwnas.measurement import host

    if host.has_nvidia_gpu():
        pytest.skip("this machine has a GPU")
    done = run_hwnas("bench", "--onnx", str(onnx_model), "-t", "tvm:cuda", env=env)
    assert done.returncode == 2
    assert (
        "cannot run here" in done.stderr
        and "GPU" in done.stderr
        and "available here:" in done.stderr
    )


def test_bench_needs_exactly_one_model(onnx_model, env):
    done = run_hwnas("bench", "-t", ONE_THREAD, env=env)
    assert done.returncode == 2 and "exactly one model" in done.stderr
    done = run_hwnas("bench", "ofa-mbv3", "--onnx", str(onnx_model), "-t", ONE_THREAD, env=env)
    assert done.returncode == 2
