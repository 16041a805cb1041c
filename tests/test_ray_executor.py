"""Searches on a real Ray cluster: a head and a worker node on 127.0.0.1, started as a user would.

The driver keeps the run store; a worker that dies loses only its task (retried
on a fresh actor); a resumed run re-measures nothing; an unreachable cluster is
a clear error before anything is measured.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_runner import run_hwnas
from synthetic_problems import OBJECTIVES, zdt_evaluate, zdt_space

import hwnas
from hwnas.errors import ConfigError
from hwnas.search_core.run_store import RunStore

pytestmark = pytest.mark.skipif(
    shutil.which("ray", path=os.path.dirname(sys.executable)) is None,
    reason="Ray is not installed (pip install 'hwnas[ray]')",
)
RAY = str(Path(sys.executable).with_name("ray"))
# Ray's head turns token authentication on; the nodes and clients joining it must use it too.
RAY_ENV = {"RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, join: bool = True) -> subprocess.CompletedProcess[str]:
    """``ray ARGS``; nodes and clients that ``join`` the cluster use its token authentication."""
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_AUTH_MODE", None)
    if join:
        env.update(RAY_ENV)
    return subprocess.run([RAY, *args], env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """``ray start --head`` plus one worker node, one CPU each; yields the ``ray://`` address."""
    gcs, client = _free_port(), _free_port()
    common = ["--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]
    # The head turns token authentication on by itself (Ray 2.60) and writes ~/.ray/auth_token.
    head = _ray(
        "start", "--head", f"--port={gcs}", f"--ray-client-server-port={client}",
        "--include-dashboard=false", *common, join=False,
    )  # fmt: skip
    assert head.returncode == 0, head.stderr[-2000:]
    try:
        worker = _ray("start", f"--address=127.0.0.1:{gcs}", *common)
        assert worker.returncode == 0, worker.stderr[-2000:]
        yield f"ray://127.0.0.1:{client}"
    finally:
        _ray("stop", "--force")


@pytest.fixture
def ray_client(cluster, monkeypatch) -> Iterator[str]:
    import cloudpickle
    import synthetic_problems

    for name, value in RAY_ENV.items():
        monkeypatch.setenv(name, value)
    # the test's helper module is not installed on the nodes: ship it with the function
    cloudpickle.register_pickle_by_value(synthetic_problems)
    yield cluster
    cloudpickle.unregister_pickle_by_value(synthetic_problems)
    import ray

    ray.shutdown()


@pytest.mark.slow
def test_a_search_runs_on_both_nodes_and_the_driver_keeps_the_store(
    plugin_host, ray_client, tmp_path
):
    result = hwnas.search(
        zdt_space(), zdt_evaluate, OBJECTIVES, strategy="nsga2", budget=12, batch_size=4,
        out=tmp_path, executor=f"{ray_client}?workers=2", seed=2,
    )  # fmt: skip
    assert len(result.evaluations) == 12 and not result.failed
    with RunStore.open_existing(tmp_path) as store:
        execution = store.meta()["execution"]
        assert store.count() == 12
    assert execution["executor"] == "ray" and execution["nodes"] == 2
    assert execution["cluster_cpus"] == 2 and execution["workers"] == 2


def _dies_once(marker: str):
    def evaluate(subnet):
        if not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os._exit(9)  # the worker process dies mid-task, as a killed node would
        return zdt_evaluate(subnet)

    return evaluate


@pytest.mark.slow
def test_a_killed_worker_loses_only_its_task_and_resume_remeasures_nothing(
    plugin_host, ray_client, tmp_path
):
    marker = tmp_path / "died"
    out = tmp_path / "run"
    first = hwnas.search(
        zdt_space(), _dies_once(str(marker)), OBJECTIVES, strategy="random", budget=6,
        batch_size=3, out=out, executor=f"{ray_client}?workers=2", seed=4,
    )  # fmt: skip
    assert marker.exists()  # a worker really died
    assert len(first.evaluations) == 6 and not first.failed  # its task was retried, not lost
    calls = tmp_path / "calls"

    def counting(subnet):
        with open(calls, "a") as f:
            f.write(subnet.key + "\n")
        return zdt_evaluate(subnet)

    resumed = hwnas.search(
        zdt_space(), counting, OBJECTIVES, strategy="random", budget=8, batch_size=3, out=out,
        executor=f"{ray_client}?workers=2", seed=4, resume=True,
    )  # fmt: skip
    measured_again = calls.read_text().split()
    assert len(resumed.evaluations) == 8 and len(measured_again) == 2  # only the new ones
    assert not set(measured_again) & {e.key for e in first.evaluations}


@pytest.mark.slow
def test_a_supernet_search_through_the_cli_on_the_cluster(ray_client, tmp_path):
    out = tmp_path / "run"
    result = run_hwnas(
        "search", "--target", "onnxruntime:cpu?threads=1", "--objectives", "accuracy,latency",
        "--strategy", "random", "--budget", "4", "--batch-size", "4", "--workers", "2",
        "--executor", ray_client, "--repeats", "5", "--out", str(out), "--quiet",
        env={**RAY_ENV, "HWNAS_CACHE_DIR": str(tmp_path / "cache")},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    with RunStore.open_existing(out) as store:
        execution = store.meta()["execution"]
        assert store.count() == 4
    rows = list(csv.DictReader((out / "evaluations.csv").open()))
    assert len(rows) == 4 and all(r["error"] == "" for r in rows)
    assert all(float(r["latency"]) > 0 and 0 < float(r["accuracy"]) <= 1 for r in rows)
    assert execution["nodes"] == 2


def test_an_unreachable_cluster_is_a_clear_error_before_anything_runs(plugin_host, tmp_path):
    port = _free_port()  # nothing listens there
    with pytest.raises(
        ConfigError, match=f"cannot reach the Ray cluster at ray://127.0.0.1:{port}"
    ):
        hwnas.search(zdt_space(), zdt_evaluate, OBJECTIVES, budget=2, out=tmp_path,
                     executor=f"ray://127.0.0.1:{port}")  # fmt: skip
    assert not (tmp_path / "search.sqlite").exists()
    result = run_hwnas(
        "search", "--space", "nb201", "--target", "raspi4", "--budget", "2",
        "--executor", f"ray://127.0.0.1:{port}", "--out", str(tmp_path / "cli"), "--quiet",
    )  # fmt: skip
    assert result.returncode == 2 and "cannot reach the Ray cluster" in result.stderr
    assert "Traceback" not in result.stderr
