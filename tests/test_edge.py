"""The edge path end to end on emulated aarch64 boards: measure, spread over boards, survive a lost board,
search, export, run the artifact on the board, verify.

Every test uses the ``edge_farm`` fixture (tests/edge_farm.py): two qemu boards
behind the tracker the ``arm/rasp4-emulated`` preset points at. Compiling
for the board is the slow part, so the module searches once (``searched``)
and later tests measure the subnets that search compiled, again on the boards.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from cli_runner import run_hwnas

from hwnas.ir import GraphIR
from hwnas.measurement.measurer import Measurer
from hwnas.measurement.protocol import MeasurementProtocol
from hwnas.measurement.results import Measurement
from hwnas.model.loader import LoadedSupernet, load_supernet
from hwnas.model.search_space import Subnet
from hwnas.search_core.run_store import RunStore

pytestmark = pytest.mark.edge

PRESET = "arm/rasp4-emulated"
BUDGET = 4
#: Short: a sample is one inference (tens of ms on an emulated board).
QUICK = MeasurementProtocol(
    warmup=1, repeats=3, min_repeat_ms=1.0, max_remeasure=0, timeout_s=300.0
)
#: Long enough (about 5 s on the board) that a board can be killed while it is timing.
LONG = MeasurementProtocol(
    warmup=1, repeats=10, min_repeat_ms=500.0, max_remeasure=0, timeout_s=300.0, device_retries=2
)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One HWNAS_CACHE_DIR for the module: libraries compiled by the search are reused, nothing from earlier runs is."""
    return tmp_path_factory.mktemp("hwnas-cache")


@pytest.fixture(scope="module")
def loaded() -> LoadedSupernet:
    """The embedded default: the tiny ofa-mbv3 supernet trained on digits."""
    return load_supernet()


@pytest.fixture(scope="module")
def searched(edge_farm, cache_dir, tmp_path_factory) -> dict[str, Any]:
    """``hwnas search`` on the emulated boards: the run directory, its CLI output, and how long it took."""
    out = tmp_path_factory.mktemp("edge-run") / "run"
    start = time.monotonic()
    result = run_hwnas(
        "search",
        "--target",
        PRESET,
        "--objectives",
        "accuracy,latency",
        "--budget",
        str(BUDGET),
        "--repeats",
        "3",
        "--quiet",
        "--out",
        str(out),
        env={"HWNAS_CACHE_DIR": str(cache_dir)},
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seconds = time.monotonic() - start
    print(f"farm up in {edge_farm.start_s} s; hwnas search (budget {BUDGET}) took {seconds:.1f} s")
    return {"out": out, "stdout": result.stdout, "stderr": result.stderr, "seconds": seconds}


@pytest.fixture(scope="module")
def searched_subnets(searched, loaded) -> list[Subnet]:
    """The subnets the search measured (their board libraries are compiled in ``cache_dir``)."""
    with RunStore.in_directory(searched["out"]) as store:
        return [e.subnet for e in store.evaluations(loaded.supernet.space)]


def _irs(loaded: LoadedSupernet, subnets: list[Subnet]) -> list[GraphIR]:
    return [GraphIR.from_subnet(loaded.supernet, loaded.module, s) for s in subnets]


def _measurer(cache_dir: Path, protocol: MeasurementProtocol = QUICK) -> Measurer:
    # cache=None: every test times on the boards again; only compiled libraries are shared.
    return Measurer(PRESET, protocol, cache=None, artifact_dir=cache_dir / "artifacts")


# -- search, export, run on the board, verify -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1800)  # its fixtures start the farm and run the search
def test_search_export_run_on_the_board_and_verify(
    edge_farm, searched, cache_dir, tmp_path, loaded
):
    assert "EMULATED" in searched["stderr"], searched["stderr"][-2000:]
    with RunStore.in_directory(searched["out"]) as store:
        evaluations = store.evaluations(loaded.supernet.space)
        assert store.meta()["target"]["fingerprint"]["emulated"] is True
    assert len(evaluations) == BUDGET and all(e.ok for e in evaluations)
    assert all(e.values["latency"] > 0 and 0 < e.values["accuracy"] <= 1 for e in evaluations)

    artifact = tmp_path / "artifact"
    exported = run_hwnas(
        "export",
        str(searched["out"]),
        "--pick",
        "max accuracy",
        "--target",
        PRESET,
        "--repeats",
        "3",
        "--out",
        str(artifact),
        env={"HWNAS_CACHE_DIR": str(cache_dir)},
    )
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert "EMULATED" in exported.stdout
    manifest = json.loads((artifact / "manifest.json").read_text())
    latency = manifest["latency"]
    assert latency["emulated"] is True and latency["median_ms"] > 0
    assert latency["device"]["emulated"] is True and latency["device"]["board"] in {
        edge_farm.board_address(i) for i in edge_farm.board_ports
    }
    assert manifest["target"]["fingerprint"]["emulated"] is True
    assert manifest["target"]["compile_details"]["cross_compiler"] == "aarch64-linux-gnu-gcc"

    # run.py inside the emulated board: its python3, numpy and TVM runtime; no hwnas, no torch there.
    ran = edge_farm.tool.run_on_board(
        ["python3", "run.py", "--repeats", "5", "--json"],
        workdir=artifact,
        capture=True,
        timeout=600,
    )
    assert ran.returncode == 0, ran.stderr[-3000:]
    report = json.loads(ran.stdout)
    assert report["outputs_match"] is True and report["max_abs_error"] < 1e-4
    assert report["median_ms"] > 0 and report["subnet"] == manifest["subnet"]["key"]

    verified = run_hwnas("verify", str(artifact))
    assert verified.returncode == 0, verified.stderr[-3000:]
    assert "outputs match the reference" in verified.stdout and "tvm-rpc:aarch64" in verified.stdout


# -- measuring on the boards --------------------------------------------------------------------------


@pytest.mark.slow
def test_a_subnet_measured_on_an_emulated_board(edge_farm, searched_subnets, loaded, cache_dir):
    ir = _irs(loaded, searched_subnets[:1])[0]
    measurement = _measurer(cache_dir).measure(ir)  # outputs checked against torch before timing
    assert measurement.max_abs_error < 1e-4 and not measurement.cached
    assert measurement.median_ms > 0 and len(measurement.samples_s) == QUICK.repeats
    assert measurement.timer == "tvm.time_evaluator"
    assert (
        measurement.fingerprint["emulated"] is True
        and measurement.fingerprint["device"] == "aarch64"
    )
    assert measurement.device["emulated"] is True and measurement.device["key"] == edge_farm.key
    assert measurement.device["board"] in {
        edge_farm.board_address(i) for i in edge_farm.board_ports
    }
    print(
        f"one subnet on {measurement.device['board']}: median {measurement.median_ms:.2f} ms, "
        f"measured in {measurement.measure_s:.1f} s"
    )


@pytest.mark.slow
def test_measure_many_spreads_over_both_boards(edge_farm, searched_subnets, loaded, cache_dir):
    edge_farm.ensure_boards(2)
    measurer = _measurer(cache_dir)
    assert measurer.target.parallel_slots() == 2
    irs = _irs(loaded, searched_subnets)
    for ir in irs:
        measurer.compile(
            ir
        )  # already compiled by the search: timing below is the boards' work only
    start = time.monotonic()
    results = measurer.measure_many(irs)
    wall = time.monotonic() - start
    assert len(results) == len(irs) >= 4
    assert all(isinstance(r, Measurement) for r in results), results
    assert all(r.max_abs_error < 1e-4 and r.median_ms > 0 for r in results)
    boards = {r.device["board"] for r in results}
    assert boards == {edge_farm.board_address(i) for i in edge_farm.board_ports}, boards
    serial = sum(r.measure_s for r in results)
    print(
        f"measure_many of {len(irs)} on 2 boards: {wall:.1f} s wall, {serial:.1f} s summed ({serial / wall:.2f}x)"
    )


class RecordingMeasurer(Measurer):
    """A Measurer that keeps every measurement it returns, to see retries and boards after a search."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Measurement] = []

    def measure(self, ir: GraphIR) -> Measurement:
        measurement = super().measure(ir)
        self.seen.append(measurement)
        return measurement


@pytest.mark.slow
def test_a_board_killed_mid_search_loses_nothing(
    edge_farm, searched_subnets, loaded, cache_dir, tmp_path
):
    # Last in this module: it leaves one board (the fixture stops or restores the farm at the end).
    from hwnas.search_core.api import search
    from hwnas.search_core.subnet_objectives import LatencyProvider, SubnetModels

    edge_farm.ensure_boards(2)
    measurer = RecordingMeasurer(PRESET, LONG, cache=None, artifact_dir=cache_dir / "artifacts")
    provider = LatencyProvider(SubnetModels(loaded.supernet, loaded.module), measurer)
    run_dir = tmp_path / "run"
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = search(
                loaded.supernet.space,
                provider,
                ["latency"],
                strategy="random",
                budget=len(searched_subnets),
                out=run_dir,
                candidates=searched_subnets,
                batch_size=1,
            )
        except BaseException as exc:  # reported by the main thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, name="edge-search")
    thread.start()
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and thread.is_alive() and time.monotonic() < deadline:
        busy = edge_farm.serving_board()
        if busy is not None:
            time.sleep(1.0)  # well inside its ~5 s of timing
            if edge_farm.serving_board() == busy:
                edge_farm.stop_board(busy)
                killed = busy
        time.sleep(0.2)
    thread.join(600)
    assert not thread.is_alive(), "the search did not finish after a board was killed"
    assert "error" not in outcome, outcome.get("error")
    assert killed is not None, "no board was seen serving a measurement"

    result = outcome["result"]
    assert len(result.evaluations) == len(searched_subnets) and all(
        e.ok for e in result.evaluations
    )
    with RunStore.in_directory(run_dir) as store:
        stored = store.evaluations(loaded.supernet.space)
    assert {e.key for e in stored} == {s.key for s in searched_subnets}
    assert all(e.ok and e.values["latency"] > 0 for e in stored)

    retried = [m for m in measurer.seen if m.retries]
    assert len(retried) == 1, [(m.device, m.retries) for m in measurer.seen]
    assert retried[0].device["board"] != edge_farm.board_address(killed)
    print(
        f"board {killed} killed mid-measurement; retried on {retried[0].device['board']} "
        f"({retried[0].retries} retry), {len(stored)} evaluations stored"
    )
    assert edge_farm.alive_boards() == [i for i in edge_farm.board_ports if i != killed]


def test_the_rpc_target_passes_the_conformance_kit_on_the_boards(edge_farm, hwnas_check_target):
    """The tvm-rpc target through hwnas.testing like any plugin: three models cross-compiled,
    run on a board for two input sets, timed there, and run standalone (conformance)."""
    report = hwnas_check_target(PRESET)
    assert [m.model for m in report.models] == ["conv0", "two-io", "attention"]
