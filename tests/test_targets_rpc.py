"""The ``tvm-rpc`` target: specs and presets, and real measurements through a TVM RPC tracker.

``slow`` tests start a tracker and two x86_64 RPC servers on this machine (the
same protocol a board farm speaks); the emulated arm64 farm is tests/test_edge.py's.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hwnas.errors import ConfigError
from hwnas.measurement.isolation import WorkerPool
from hwnas.measurement.measurer import Measurer
from hwnas.measurement.protocol import MeasurementProtocol
from hwnas.measurement.resolve import resolve_target
from hwnas.measurement.results import Measurement
from hwnas_targets import rpc_tracker

KEY = "hwnas-test-board"


@pytest.fixture(scope="module")
def small_irs():
    import torch

    from hwnas.ir import GraphIR

    torch.manual_seed(0)
    irs = []
    for width in (4, 6, 8):
        net = torch.nn.Sequential(
            torch.nn.Conv2d(3, width, 3, padding=1, bias=False),
            torch.nn.BatchNorm2d(width),
            torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1),
            torch.nn.Flatten(),
            torch.nn.Linear(width, 3),
        ).eval()
        irs.append(GraphIR.from_module(net, (torch.randn(1, 3, 12, 12),), name=f"w{width}"))
    return irs


@pytest.fixture(scope="module")
def pool():
    workers = WorkerPool()
    yield workers
    workers.close()


# -- specs, presets, availability -------------------------------------------------------


def test_emulated_preset_says_so_in_its_fingerprint(builtin_plugin_host):
    target = resolve_target("arm/rasp4-emulated")
    fp = target.fingerprint()
    assert target.kind == "tvm-rpc" and target.label == "arm/rasp4-emulated"
    assert fp["emulated"] is True and fp["key"] == "rasp4-emulated" and fp["mcpu"] == "cortex-a72"
    real = resolve_target("arm/rasp4b").fingerprint()
    assert real["emulated"] is False and real["key"] == "rasp4" and real["threads"] == 4
    assert target.fingerprint_hash() != resolve_target("arm/rasp4b").fingerprint_hash()
    assert target.tvm_target()["mtriple"] == "aarch64-linux-gnu"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tvm-rpc:aarch64", "no address"),
        ("tvm-rpc:mips@127.0.0.1:9190?key=x", "unknown board architecture"),
        ("tvm-rpc:aarch64@127.0.0.1:9190?trials=8", "needs a tracker"),
    ],
)
def test_bad_rpc_specs(builtin_plugin_host, spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve_target(spec)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_unreachable_tracker_is_unavailable_with_the_reason(builtin_plugin_host):
    target = resolve_target(f"tvm-rpc:aarch64@127.0.0.1:{_free_port()}?key=rasp4")
    availability = target.available()
    assert not availability and "not reachable" in availability.reason
    assert target.parallel_slots() == 1


def test_lost_connections_count_as_lost_devices(builtin_plugin_host):
    target = resolve_target("tvm-rpc:aarch64@127.0.0.1:9190?key=rasp4")
    assert target.is_device_lost(ConnectionResetError("peer reset"))
    assert target.is_device_lost(RuntimeError("RPCSessionTimeoutError: session expired"))
    assert not target.is_device_lost(ValueError("shape mismatch in argument 0"))


# -- a local farm: one tracker, two x86_64 RPC servers ---------------------------------------


@dataclass
class Farm:
    tracker_port: int
    boards: dict[int, subprocess.Popen[bytes]]  # board port -> server process (own session)
    tracker: subprocess.Popen[bytes]

    @property
    def spec(self) -> str:
        return f"tvm-rpc:x86_64@127.0.0.1:{self.tracker_port}?key={KEY}&cc=gcc&threads=1"

    def free(self) -> int:
        return rpc_tracker.free_boards("127.0.0.1", self.tracker_port, KEY)


def _start(args: list[str]) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TVM_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", *args],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g} s")
        time.sleep(0.5)


@pytest.fixture(scope="module")
def farm() -> Iterator[Farm]:
    tracker_port = _free_port()
    tracker = _start(
        [
            "tvm.exec.rpc_tracker",
            "--host",
            "127.0.0.1",
            "--port",
            str(tracker_port),
            "--port-end",
            str(tracker_port + 1),
            "--silent",
        ]
    )
    boards: dict[int, subprocess.Popen[bytes]] = {}
    try:
        _wait(lambda: rpc_tracker.reachable("127.0.0.1", tracker_port) == "", 120, "tracker up")
        for _ in range(2):
            port = _free_port()
            boards[port] = _start(
                [
                    "tvm.exec.rpc_server",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--port-end",
                    str(port + 1),
                    "--tracker",
                    f"127.0.0.1:{tracker_port}",
                    "--key",
                    KEY,
                    "--silent",
                ]
            )
        farm = Farm(tracker_port, boards, tracker)
        _wait(lambda: farm.free() == 2, 180, "two boards registered")
        yield farm
    finally:
        for proc in [tracker, *boards.values()]:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait()


@pytest.mark.slow
def test_measurements_spread_over_the_free_boards(
    builtin_plugin_host, farm, small_irs, pool, tmp_path
):
    target = resolve_target(farm.spec)
    assert target.available() and target.parallel_slots() == 2
    protocol = MeasurementProtocol(warmup=1, repeats=5, min_repeat_ms=20.0, timeout_s=300.0)
    measurer = Measurer(target, protocol, cache=None, artifact_dir=tmp_path, pool=pool)
    results = measurer.measure_many(small_irs)
    assert all(isinstance(r, Measurement) for r in results), results
    assert all(r.max_abs_error < 1e-4 and r.timer == "tvm.time_evaluator" for r in results)
    assert {r.device["board"] for r in results} <= {f"127.0.0.1:{p}" for p in farm.boards}
    assert all(r.device["threads"] == 1 for r in results)


@pytest.mark.slow
def test_tuning_measures_candidates_on_the_boards(
    builtin_plugin_host, farm, small_irs, pool, tmp_path
):
    spec = f"{farm.spec}&trials=4&db={tmp_path / 'db'}"
    protocol = MeasurementProtocol(warmup=1, repeats=5, min_repeat_ms=10.0, timeout_s=300.0)
    measurer = Measurer(spec, protocol, cache=None, artifact_dir=tmp_path / "a", pool=pool)
    tuning = measurer.compile(small_irs[1]).details["tuning"]
    assert tuning["tasks"] > 0 and tuning["tuned"] == tuning["tasks"]
    records = (tmp_path / "db" / "database_tuning_record.json").read_text().splitlines()
    assert len(records) >= tuning["tasks"]  # candidates were built, run on a board and recorded
    assert measurer.measure(small_irs[1]).max_abs_error < 1e-4


def _session_holder(farm: Farm) -> int | None:
    """The port of the board serving a session now (its server has forked a session process)."""
    import psutil

    for port, proc in farm.boards.items():
        if proc.poll() is None and len(psutil.Process(proc.pid).children(recursive=True)) >= 2:
            return port
    return None


@pytest.mark.slow
def test_a_board_dying_mid_measurement_is_replaced(
    builtin_plugin_host, farm, small_irs, pool, tmp_path
):
    target = resolve_target(farm.spec)
    protocol = MeasurementProtocol(
        warmup=1, repeats=30, min_repeat_ms=300.0, timeout_s=300.0, device_retries=2
    )
    measurer = Measurer(target, protocol, cache=None, artifact_dir=tmp_path, pool=pool)
    measurer.compile(small_irs[0])  # compile first so the board is busy timing when it dies
    result: list[object] = []
    thread = threading.Thread(target=lambda: result.append(measurer.measure_one(small_irs[0])))
    thread.start()
    _wait(
        lambda: farm.free() == 1 and _session_holder(farm) is not None,
        120,
        "a board busy measuring",
    )
    time.sleep(1.0)
    killed = _session_holder(farm)
    assert killed is not None
    os.killpg(farm.boards[killed].pid, signal.SIGKILL)
    thread.join(300)
    (measured,) = result
    assert isinstance(measured, Measurement), measured
    assert measured.retries >= 1
    assert measured.device["board"] != f"127.0.0.1:{killed}"


# The emulated arm64 farm itself is exercised by tests/test_edge.py (fixture edge_farm).


@pytest.mark.slow
def test_a_board_of_another_kind_is_refused_not_timed(
    builtin_plugin_host, farm, small_irs, pool, tmp_path
):
    # the farm's boards are x86_64; a spec naming aarch64 boards under the same key must not trust them
    spec = farm.spec.replace("tvm-rpc:x86_64", "tvm-rpc:aarch64").replace("&cc=gcc", "")
    protocol = MeasurementProtocol(warmup=1, repeats=5, min_repeat_ms=5.0, timeout_s=300.0)
    measurer = Measurer(spec, protocol, cache=None, artifact_dir=tmp_path, pool=pool)
    result = measurer.measure_one(small_irs[0])
    assert not isinstance(result, Measurement)
    assert result.kind == "error", result.reason
    assert "is not the aarch64 board this target names" in result.reason
    assert result.seconds < 120  # not retried as a lost device


def test_an_rpc_address_off_loopback_warns(builtin_plugin_host):
    with pytest.warns(UserWarning, match="not on loopback; TVM RPC has no authentication"):
        resolve_target("tvm-rpc:aarch64@192.0.2.7:9190?key=rasp4")
