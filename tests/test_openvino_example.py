"""The OpenVINO example plugin (examples/hwnas-openvino) end to end, as a third-party user runs it.

bench, search, export and verify through the CLI; the exported ``run.py`` in
an interpreter that can import only numpy and openvino; ``hwnas verify`` on a
machine without the plugin names the package to install.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_hwnas

pytest.importorskip(
    "hwnas_openvino", reason="examples/hwnas-openvino is not installed (make setup)"
)
pytest.importorskip("openvino", reason="openvino is not installed (make setup)")

pytestmark = pytest.mark.slow
TARGET = "openvino:cpu?threads=1"
#: What run.py may see: these top-level names from the venv, nothing else (no site-packages).
RUNTIME_ONLY = ("numpy", "numpy.libs", "openvino", "openvino_telemetry")


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("openvino")
    search = run_hwnas(
        "search", "--target", TARGET, "--objectives", "accuracy,latency", "--strategy", "random",
        "--budget", "3", "--batch-size", "3", "--repeats", "5", "--quiet", "--out", str(root / "run"),
    )  # fmt: skip
    assert search.returncode == 0, search.stderr
    export = run_hwnas(
        "export", str(root / "run"), "--pick", "min latency", "--target", TARGET,
        "--repeats", "5", "--out", str(root / "artifact"),
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    return root / "artifact"


def test_bench_measures_openvino_beside_a_builtin(tmp_path):
    subnet = run_hwnas("subnet", "sample", "ofa-mbv3", "--smallest")
    assert subnet.returncode == 0, subnet.stderr
    (tmp_path / "subnet.json").write_text(subnet.stdout)
    result = run_hwnas(
        "bench", "ofa-mbv3", str(tmp_path / "subnet.json"),
        "--targets", f"{TARGET},onnxruntime:cpu?threads=1", "--repeats", "5",
        "--min-repeat-ms", "2", "--no-cache", "--json", str(tmp_path / "bench.json"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "bench.json").read_text()
    assert "openvino:cpu" in text and "onnxruntime:cpu" in text


def test_manifest_names_the_plugin_runtime_and_hardware(exported):
    manifest = json.loads((exported / "manifest.json").read_text())
    assert manifest["target"]["plugin"]["package"] == "hwnas-openvino"
    assert manifest["target"]["plugin"]["version"] == "0.1.0"
    runtime = manifest["runtime"]
    assert runtime["loader"] == "openvino-ir" and runtime["package"] == "openvino"
    assert runtime["version"] and runtime["module"] == "loader.py"
    assert runtime["device"]["device"] == "cpu" and runtime["device"]["name"]
    assert manifest["latency"]["device"]["precision"] == "f32"
    assert {"loader.py", "run.py", "compiled/model.xml", "compiled/model.bin"} <= {
        f["path"] for f in manifest["files"]
    }


def test_verify_runs_the_artifact_on_openvino(exported):
    result = run_hwnas("verify", str(exported))
    assert result.returncode == 0, result.stderr
    assert "outputs match the reference" in result.stdout


def test_verify_without_the_plugin_names_the_package(exported):
    result = run_hwnas("verify", str(exported), env={"HWNAS_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 2
    assert "pip install 'hwnas-openvino==0.1.0'" in result.stderr


def runtime_only_path(directory: Path) -> Path:
    """A folder holding links to numpy and openvino only, from this interpreter's site-packages."""
    import numpy
    import openvino

    directory.mkdir()
    for package in (numpy, openvino):
        site = Path(package.__file__).resolve().parents[1]
        for name in RUNTIME_ONLY:
            if (site / name).exists() and not (directory / name).exists():
                (directory / name).symlink_to(site / name)
    return directory


def test_run_py_needs_only_numpy_and_openvino(exported, tmp_path):
    path = runtime_only_path(tmp_path / "runtime")
    # -I: no user site, no PYTHON* variables; -S: no site-packages: numpy and openvino only
    boot = (
        f"import sys; sys.path[:0] = [{str(path)!r}]; import runpy; "
        "sys.argv = ['run.py', '--json', '--repeats', '5']; "
        "runpy.run_path('run.py', run_name='__main__'); "
        "assert not any(m.split('.')[0] in ('hwnas', 'torch') for m in sys.modules)"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", boot],
        cwd=exported, capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["outputs_match"] is True and report["median_ms"] > 0


def test_run_py_without_the_runtime_says_what_to_install(exported, tmp_path):
    path = tmp_path / "numpy-only"
    path.mkdir()
    import numpy

    site = Path(numpy.__file__).resolve().parents[1]
    for name in ("numpy", "numpy.libs"):
        if (site / name).exists():
            (path / name).symlink_to(site / name)
    boot = (
        f"import sys; sys.path[:0] = [{str(path)!r}]; import runpy; sys.argv = ['run.py']; "
        "runpy.run_path('run.py', run_name='__main__')"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", boot], cwd=exported, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "pip install 'openvino==" in result.stderr
