"""Export a subnet as a deployable directory, run it without hwnas/torch, verify it, detect tampering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_hwnas

from hwnas import registry
from hwnas.deploy.export import Pick, export_subnet
from hwnas.deploy.manifest import read_manifest
from hwnas.deploy.verify import verify_artifact
from hwnas.errors import ConfigError
from hwnas.measurement.protocol import MeasurementProtocol
from hwnas.plugin_manager import PluginHost
from hwnas.search_core.evaluator import Evaluation

FAST = MeasurementProtocol(warmup=1, repeats=5, min_repeat_ms=1.0, max_remeasure=0)
TARGETS = ["onnxruntime:cpu", "tvm:llvm"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, Path]:
    registry.use_plugin_host(PluginHost(autoload=False))
    supernet = registry.supernet_class("ofa-mbv3").configure("tiny")
    module = supernet.build().eval()
    subnet = supernet.space.sample(7)
    cache = tmp_path_factory.mktemp("cache") / "measurements.sqlite"
    out = {}
    for spec in TARGETS:
        directory = tmp_path_factory.mktemp(spec.replace(":", "_")) / "artifact"
        export_subnet(
            supernet, module, subnet, spec, directory, protocol=FAST, accuracy=0.5, cache=cache
        )
        out[spec] = directory
    registry.use_plugin_host(None)
    return out


@pytest.mark.parametrize("spec", TARGETS)
def test_manifest_describes_the_artifact(exported, spec):
    manifest = read_manifest(exported[spec])
    assert manifest["target"]["spec"] == spec
    assert manifest["subnet"]["space"] == "ofa-mbv3"
    assert manifest["supernet"]["arguments"]["supernet"] == "ofa-mbv3"
    assert manifest["latency"]["median_ms"] > 0 and len(manifest["latency"]["samples_ms"]) == 5
    assert manifest["macs"] > 0 and manifest["params"] > 0 and manifest["accuracy"] == 0.5
    paths = {f["path"] for f in manifest["files"]}
    assert {
        "model.onnx",
        "weights.npz",
        "reference.npz",
        "run.py",
        manifest["runtime"]["entry"],
    } <= paths
    assert manifest["versions"]["hwnas"]
    if spec.startswith("tvm"):
        assert manifest["runtime"]["loader"] == "tvm-relax-vm"
        assert manifest["target"]["fingerprint"]["runtime"].startswith("tvm")


@pytest.mark.parametrize("spec", TARGETS)
def test_run_py_needs_neither_hwnas_nor_torch(exported, spec):
    blocker = (
        "import sys, runpy\n"
        "for name in ('torch', 'hwnas', 'hwnas_targets'):\n    sys.modules[name] = None\n"
        "sys.argv = ['run.py', '--json', '--repeats', '5']\n"
        "runpy.run_path('run.py', run_name='__main__')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", blocker], cwd=exported[spec], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outputs_match"] is True and report["median_ms"] > 0


@pytest.mark.parametrize("spec", TARGETS)
def test_verify_passes_on_an_untouched_artifact(exported, spec, builtin_plugin_host):
    report = verify_artifact(exported[spec])
    assert report.ok and report.outputs_checked and report.outputs_match


def test_tampered_and_truncated_files_are_reported_by_name(exported, tmp_path, builtin_plugin_host):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported["tvm:llvm"], copy)
    library = copy / read_manifest(copy)["runtime"]["entry"]
    data = bytearray(library.read_bytes())
    data[len(data) // 2] ^= 0xFF
    library.write_bytes(bytes(data))
    weights = copy / "weights.npz"
    weights.write_bytes(weights.read_bytes()[:100])
    report = verify_artifact(copy)
    assert not report.ok and not report.outputs_checked
    text = "\n".join(report.file_problems)
    assert "compiled/model.so: sha256 differs" in text
    assert "weights.npz: size 100 bytes" in text and "truncated" in text
    result = run_hwnas("verify", str(copy))
    assert result.returncode == 1
    assert "TAMPERED compiled/model.so" in result.stderr and "TAMPERED weights.npz" in result.stderr


def test_verify_cli_on_a_good_artifact_and_on_a_non_artifact(exported, tmp_path):
    good = run_hwnas("verify", str(exported["onnxruntime:cpu"]))
    assert good.returncode == 0 and "outputs match the reference" in good.stdout
    bad = run_hwnas("verify", str(tmp_path))
    assert bad.returncode == 2 and "manifest.json is missing" in bad.stderr


def _evaluation(key: str, accuracy: float, latency: float) -> Evaluation:
    from hwnas.model.search_space import Subnet

    return Evaluation(
        subnet=Subnet("toy", (("g", key),), key=key),
        values={"accuracy": accuracy, "latency": latency},
    )


def test_pick_chooses_the_best_subnet_under_a_bound():
    evaluations = [
        _evaluation("a", 0.9, 6.0),
        _evaluation("b", 0.8, 4.0),
        _evaluation("c", 0.7, 1.0),
    ]
    assert Pick.parse("max accuracy where latency<=5ms").choose(evaluations).key == "b"
    assert Pick.parse("min latency").choose(evaluations).key == "c"
    tied = [
        _evaluation("slow", 0.9, 3.0),
        _evaluation("fast", 0.9, 2.0),
        _evaluation("x", 0.5, 1.0),
    ]
    assert Pick.parse("max accuracy").choose(tied).key == "fast"
    with pytest.raises(ConfigError, match="no evaluated subnet meets latency<=0.5ms"):
        Pick.parse("max accuracy where latency<=0.5ms").choose(evaluations)
    with pytest.raises(ConfigError, match="cannot read --pick"):
        Pick.parse("best accuracy")


def test_export_refuses_to_overwrite_without_the_flag(exported, tmp_path):
    subnet_file = tmp_path / "subnet.json"
    manifest = read_manifest(exported["onnxruntime:cpu"])
    subnet_file.write_text(
        json.dumps({"space": "ofa-mbv3", "config": manifest["subnet"]["config"]})
    )
    result = run_hwnas(
        "export",
        "--subnet",
        str(subnet_file),
        "--supernet",
        "ofa-mbv3",
        "--preset",
        "tiny",
        "--target",
        "onnxruntime:cpu",
        "--out",
        str(exported["onnxruntime:cpu"]),
    )
    assert result.returncode == 2 and "is not empty" in result.stderr
