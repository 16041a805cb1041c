"""The main job on a supernet: search with measured latency, export the pick from the run, verify it."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
from cli_runner import run_hwnas

from hwnas.model.default_model import default_checkpoint_path

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A 4-evaluation search of a copy of the embedded default on onnxruntime (a copy, so tests may alter it)."""
    root = tmp_path_factory.mktemp("main-job")
    checkpoint = root / "weights.pt"
    shutil.copyfile(default_checkpoint_path(), checkpoint)
    run = root / "run"
    result = run_hwnas(
        "search",
        "--checkpoint",
        str(checkpoint),
        "--target",
        "onnxruntime:cpu?threads=1",
        "--objectives",
        "accuracy,latency",
        "--strategy",
        "random",
        "--budget",
        "4",
        "--repeats",
        "3",
        "--out",
        str(run),
        "--quiet",
        env={"HWNAS_CACHE_DIR": str(root / "cache")},
    )
    assert result.returncode == 0, result.stderr
    assert "resolution=" in result.stdout and "report.html" in result.stdout  # genes by name
    return root, run, checkpoint


def test_search_writes_every_evaluation_with_measured_latency(searched):
    _, run, _ = searched
    with open(run / "evaluations.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 4
    for row in rows:
        assert 0.0 < float(row["accuracy"]) <= 1.0
        assert float(row["latency"]) > 0.0
    front = json.loads((run / "pareto.json").read_text())
    assert front and (run / "pareto.png").stat().st_size > 0


def test_search_records_sizes_and_latency_noise_and_reports_them(searched):
    from hwnas.search_core.report_data import run_views
    from hwnas.search_core.report_inputs import read_input

    _, run, _ = searched
    with open(run / "evaluations.csv") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:  # measured latency brings the IR's sizes and the noise check's verdict along
        assert float(row["macs"]) > 0 and float(row["params"]) > 0
        assert row["latency_remeasures"] in ("0.0", "1.0", "2.0") and row["latency_noisy"] in (
            "0.0",
            "1.0",
        )
    (view,) = run_views([read_input(run)])
    assert view.run.progress.complete and view.target == "onnxruntime:cpu?threads=1"
    assert all(
        s is not None and len(s.samples) == 3 and s.remeasures is not None for s in view.latency
    )
    page = (run / "report.html").read_text()
    assert (
        "onnxruntime:cpu?threads=1" in page and "timing threads" in page and "resolution=" in page
    )


def test_export_from_the_run_and_verify(searched):
    root, run, _ = searched
    out = root / "artifact"
    result = run_hwnas(
        "export",
        str(run),
        "--pick",
        "max accuracy",
        "--target",
        "onnxruntime:cpu?threads=1",
        "--out",
        str(out),
        env={"HWNAS_CACHE_DIR": str(root / "cache")},
    )
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    with open(run / "evaluations.csv") as fh:
        best = max(float(r["accuracy"]) for r in csv.DictReader(fh))
    assert manifest["accuracy"] == pytest.approx(best)
    assert manifest["supernet"]["checkpoint"]["sha256"]
    verified = run_hwnas("verify", str(out))
    assert verified.returncode == 0, verified.stderr
    assert "outputs match the reference" in verified.stdout


def test_resume_with_a_bigger_budget_repeats_nothing(searched):
    root, run, checkpoint = searched
    result = run_hwnas(
        "search",
        "--checkpoint",
        str(checkpoint),
        "--target",
        "onnxruntime:cpu?threads=1",
        "--objectives",
        "accuracy,latency",
        "--strategy",
        "random",
        "--budget",
        "5",
        "--repeats",
        "3",
        "--out",
        str(run),
        "--resume",
        "--quiet",
        env={"HWNAS_CACHE_DIR": str(root / "cache")},
    )
    assert result.returncode == 0, result.stderr
    with open(run / "evaluations.csv") as fh:
        keys = [r["key"] for r in csv.DictReader(fh)]
    assert len(keys) == 5 and len(set(keys)) == 5


def test_export_refuses_a_run_whose_checkpoint_changed(searched, tmp_path):
    root, run, checkpoint = searched
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    with open(checkpoint, "ab") as fh:  # the weights file changes after the search
        fh.write(b"\0")
    try:
        result = run_hwnas(
            "export", str(copy), "--target", "onnxruntime:cpu", "--out", str(tmp_path / "a")
        )
    finally:
        with open(checkpoint, "rb+") as fh:
            fh.truncate(checkpoint.stat().st_size - 1)
    assert result.returncode == 2
    assert "changed since the search ran" in result.stderr


def test_searching_an_unknown_metric_is_a_clear_error(tmp_path):
    result = run_hwnas(
        "search",
        "--target",
        "onnxruntime:cpu",
        "--objectives",
        "accuracy,energy",
        "--budget",
        "2",
        "--out",
        str(tmp_path / "r"),
    )
    assert result.returncode == 2
    assert "energy" in result.stderr
