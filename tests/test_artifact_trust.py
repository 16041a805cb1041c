"""An exported artifact is untrusted input: verify cannot be fooled by an edited manifest, stray or
escaping files, absurd tolerances or a swapped target, and export never destroys what it should not
(issue 12)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_hwnas

from hwnas import registry
from hwnas.deploy.export import export_subnet
from hwnas.deploy.manifest import artifact_digest
from hwnas.deploy.verify import verify_artifact
from hwnas.errors import ConfigError, MeasurementError
from hwnas.measurement.protocol import MeasurementProtocol
from hwnas.plugin_manager import PluginHost

FAST = MeasurementProtocol(warmup=1, repeats=5, min_repeat_ms=1.0, max_remeasure=0)


@pytest.fixture(scope="module")
def model():
    registry.use_plugin_host(PluginHost(autoload=False))
    supernet = registry.supernet_class("ofa-mbv3").configure("tiny")
    yield supernet, supernet.build().eval(), supernet.space.sample(3)
    registry.use_plugin_host(None)


@pytest.fixture(scope="module")
def artifact(model, tmp_path_factory) -> Path:
    supernet, module, subnet = model
    out = tmp_path_factory.mktemp("export") / "artifact"
    cache = tmp_path_factory.mktemp("cache") / "m.sqlite"
    export_subnet(supernet, module, subnet, "onnxruntime:cpu", out, protocol=FAST, cache=cache)
    return out


@pytest.fixture
def copy(artifact, tmp_path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(artifact, target)
    return target


def edit_manifest(directory: Path, change) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest, indent=2))


def test_an_edited_manifest_is_caught_by_the_pinned_digest(copy, builtin_plugin_host):
    digest = artifact_digest(copy)
    assert verify_artifact(copy, check_outputs=False, digest=digest).ok
    edit_manifest(copy, lambda m: m.update(macs=1, accuracy=0.999))
    edit_manifest(copy, lambda m: m["latency"].update(median_ms=0.001))
    report = verify_artifact(copy, check_outputs=False, digest=digest)
    assert not report.ok and "is not the pinned" in report.file_problems[0]
    result = run_hwnas("verify", str(copy), "--files-only", "--digest", digest)
    assert result.returncode == 1 and "TAMPERED manifest.json: digest" in result.stderr


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda m: m.update(files=[]), "lists no files"),
        (lambda m: m["files"].append({"path": "../outside.txt", "sha256": "0", "size": 1}), "leaves the artifact"),
        (lambda m: m["files"].append({"path": "/etc/passwd", "sha256": "0", "size": 1}), "leaves the artifact"),
        (lambda m: m.update(files=[f for f in m["files"] if f["path"] != "run.py"]), "run.py: stray file"),
        (lambda m: m["target"].update(spec="onnxruntime:cpu?opt=basic"), "compiled for"),
    ],
)  # fmt: skip
def test_manifest_tricks_are_reported(copy, builtin_plugin_host, change, problem):
    edit_manifest(copy, change)
    report = verify_artifact(copy)
    assert not report.ok and not report.outputs_checked
    assert any(problem in p for p in report.file_problems), report.file_problems


def test_stray_files_and_links_are_reported(copy, builtin_plugin_host, tmp_path):
    (copy / "extra.py").write_text("print('hi')")
    report = verify_artifact(copy)
    assert "extra.py: stray file, not in the manifest" in report.file_problems


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m["verification"].update(rtol=1e9), "verification.rtol=1e+09 is outside"),
        (lambda m: m["verification"].update(atol=-1), "verification.atol=-1 is outside"),
        (lambda m: m.pop("reference"), "field reference is missing"),
        (lambda m: m["runtime"].pop("entry"), "field runtime.entry is missing"),
        (lambda m: m.update(target="tvm:llvm"), "field target.spec is missing"),
    ],
)
def test_malformed_manifests_are_clear_errors(copy, change, message):
    edit_manifest(copy, change)
    with pytest.raises(ConfigError, match=re.escape(message)):
        verify_artifact(copy)
    result = run_hwnas("verify", str(copy))
    assert result.returncode == 2 and message.split(" is")[0] in result.stderr
    assert "Traceback" not in result.stderr


def test_verify_runs_the_library_in_a_worker_not_in_its_own_process(artifact):
    code = (
        "import sys; from hwnas.deploy.verify import verify_artifact; "
        f"r = verify_artifact({str(artifact)!r}); "
        "assert r.ok and r.outputs_match, r; "
        "assert 'onnxruntime' not in sys.modules, 'the library was loaded in-process'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr


def test_overwrite_refuses_a_folder_that_holds_more_than_an_artifact(model, copy, tmp_path):
    supernet, module, subnet = model
    (copy / "src").mkdir()
    (copy / "src" / "code.py").write_text("precious = True")
    with pytest.raises(ConfigError, match="holds more or other than an hwnas artifact"):
        export_subnet(
            supernet, module, subnet, "onnxruntime:cpu", copy, protocol=FAST, overwrite=True
        )
    assert (copy / "src" / "code.py").read_text() == "precious = True"
    plain = tmp_path / "project"
    plain.mkdir()
    (plain / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an hwnas artifact"):
        export_subnet(
            supernet, module, subnet, "onnxruntime:cpu", plain, protocol=FAST, overwrite=True
        )
    assert (plain / "notes.txt").exists()


def test_a_failing_export_leaves_the_previous_artifact_untouched(
    model, copy, tmp_path, builtin_plugin_host
):
    from measurement_fakes import RegistersMeasurementFakes

    builtin_plugin_host.register(RegistersMeasurementFakes(), name="measurement-fakes")
    supernet, module, subnet = model
    before = artifact_digest(copy)
    with pytest.raises(MeasurementError, match="differ from the torch reference"):
        export_subnet(
            supernet, module, subnet, "fake-replay:perturb", copy, protocol=FAST, overwrite=True,
            cache=None,
        )  # fmt: skip
    assert artifact_digest(copy) == before and verify_artifact(copy, check_outputs=False).ok
    assert not [p for p in copy.parent.iterdir() if p.name.startswith(".copy.")]  # no leftovers


def test_overwrite_replaces_a_real_artifact(model, copy, builtin_plugin_host):
    supernet, module, subnet = model
    other = supernet.space.sample(4)
    result = export_subnet(
        supernet, module, other, "onnxruntime:cpu", copy, protocol=FAST, overwrite=True, cache=None
    )
    assert json.loads((copy / "manifest.json").read_text())["subnet"]["key"] == other.key
    assert verify_artifact(copy, digest=result.digest).ok
