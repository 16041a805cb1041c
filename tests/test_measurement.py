"""The measurement core with fake targets: statistics, verification, isolation of crashes and hangs, retries, cache."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
from measurement_fakes import RegistersMeasurementFakes

from hwnas.errors import CompileError, ConfigError, MeasurementError
from hwnas.measurement.cache import MeasurementCache
from hwnas.measurement.measurer import Measurer
from hwnas.measurement.protocol import MeasurementProtocol
from hwnas.measurement.results import Measurement, MeasurementFailure, Statistics
from hwnas.measurement.target import Runner
from hwnas.measurement.timing import time_runner
from hwnas.measurement.verification import compare_outputs, fixed_inputs

FAST = MeasurementProtocol(warmup=1, repeats=5, min_repeat_ms=1.0, timeout_s=60.0, max_remeasure=1)


@pytest.fixture(scope="module")
def tiny_ir():
    import torch

    from hwnas.ir import GraphIR

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval()
    return GraphIR.from_module(module, (torch.randn(2, 8),), name="tiny")


@pytest.fixture
def fakes(builtin_plugin_host):
    builtin_plugin_host.register(RegistersMeasurementFakes(), name="measurement-fakes")
    return builtin_plugin_host


@pytest.fixture
def measurer(fakes, pool, tmp_path):
    def make(spec: str, protocol: MeasurementProtocol = FAST, cache: object = None) -> Measurer:
        return Measurer(spec, protocol, cache=cache, artifact_dir=tmp_path / "artifacts", pool=pool)

    return make


# -- statistics and verification ----------------------------------------------------


def test_statistics_of_known_samples():
    stats = Statistics.of([1.0, 2.0, 3.0, 4.0, 5.0])
    assert stats.median == 3.0
    assert stats.p90 == pytest.approx(4.6)
    assert stats.iqr == pytest.approx(2.0)
    assert stats.mean == 3.0
    assert stats.cv == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1) / 3.0)


def test_compare_outputs_accepts_within_tolerance_and_names_a_mismatch():
    ref = [np.array([1.0, 2.0, 3.0], dtype=np.float32)]
    error, problem = compare_outputs([ref[0] + 1e-6], ref, rtol=1e-4, atol=1e-5)
    assert problem == "" and error == pytest.approx(1e-6, rel=0.1)
    error, problem = compare_outputs(
        [ref[0] + np.array([0, 0, 0.5], dtype=np.float32)], ref, 1e-4, 1e-5
    )
    assert "1 of 3 values differ" in problem and error == pytest.approx(0.5)
    assert "shape" in compare_outputs([ref[0].reshape(3, 1)], ref, 1e-4, 1e-5)[1]
    assert "2 output(s)" in compare_outputs([ref[0], ref[0]], ref, 1e-4, 1e-5)[1]
    assert compare_outputs([np.array([np.nan])], [np.array([np.nan])], 1e-4, 1e-5) == (0.0, "")
    assert compare_outputs([np.array([np.nan])], [np.array([1.0])], 1e-4, 1e-5)[0] == math.inf


def test_protocol_validates_and_keys_only_what_changes_results():
    with pytest.raises(ConfigError, match="repeats=1"):
        MeasurementProtocol(repeats=1)
    key = MeasurementProtocol(timeout_s=5, device_retries=0).key()
    assert key == MeasurementProtocol(timeout_s=500).key()
    assert "timeout_s" not in key and key != MeasurementProtocol(repeats=7).key()
    assert MeasurementProtocol.from_dict(FAST.to_dict()) == FAST


class SleepRunner(Runner):
    def __init__(self, seconds: float) -> None:
        self.seconds, self.runs = seconds, 0

    def set_inputs(self, inputs):
        pass

    def run(self) -> None:
        self.runs += 1
        time.sleep(self.seconds)

    def outputs(self):
        return []


def test_time_runner_fills_min_repeat_ms_with_runs():
    runner = SleepRunner(0.001)
    samples, timer = time_runner(runner, repeats=4, min_repeat_ms=10.0)
    assert timer == "perf_counter" and len(samples) == 4
    assert all(0.0009 < s < 0.01 for s in samples)
    assert runner.runs >= 4 * 8  # each repeat ran about 10 ms worth of 1 ms runs


def test_fixed_inputs_are_the_example_inputs(tiny_ir):
    (x,) = fixed_inputs(tiny_ir)
    assert np.array_equal(x, tiny_ir.example_inputs[0].numpy())


# -- measuring through the worker ----------------------------------------------------------


def test_replay_target_measures_with_all_samples(measurer, tiny_ir):
    result = measurer("fake-replay:ok").measure(tiny_ir)
    assert isinstance(result, Measurement) and not result.cached
    assert len(result.samples_s) == FAST.repeats and result.timer == "perf_counter"
    assert result.median_s > 0 and result.p90_s >= result.median_s
    assert result.throughput == pytest.approx(2 / result.median_s)  # batch of 2
    assert result.max_abs_error == 0.0 and result.ir_key == tiny_ir.key
    assert Measurement.from_dict(result.to_dict()) == result


def test_a_targets_own_tolerance_is_used_and_recorded(measurer, tiny_ir):
    result = measurer("fake-coarse").measure(tiny_ir)
    assert (result.protocol.rtol, result.protocol.atol) == (0.0, 0.05)
    assert result.max_abs_error == pytest.approx(0.01, rel=1e-3)
    # a protocol that sets its own tolerance wins, and is recorded the same way
    strict = MeasurementProtocol(**{**FAST.to_dict(), "atol": 1e-3, "rtol": 0.0})
    with pytest.raises(MeasurementError, match=r"atol=0.001"):
        measurer("fake-coarse", strict).measure(tiny_ir)
    default = measurer("fake-replay:ok").measure(tiny_ir)
    assert (default.protocol.rtol, default.protocol.atol) == (1e-3, 1e-4)


def test_tolerances_outside_a_sane_range_are_refused():
    with pytest.raises(ConfigError, match="atol=1000000000.0"):
        MeasurementProtocol(atol=1e9)


def test_a_target_that_does_not_pickle_gets_a_clear_failure(measurer, tiny_ir):
    # the compile worker is the first to need it pickled
    with pytest.raises(CompileError, match="everything a Target holds must pickle"):
        measurer("fake-handle").measure(tiny_ir)


def test_mismatching_outputs_raise_and_give_no_latency(measurer, tiny_ir):
    with pytest.raises(MeasurementError, match="differ from the torch reference") as info:
        measurer("fake-replay:perturb").measure(tiny_ir)
    failure = info.value.failure
    assert failure.kind == "mismatch"


@pytest.mark.parametrize(
    ("behaviour", "signal_name"),
    [("abort", "SIGABRT"), ("segv", "SIGSEGV"), ("oom", "SIGKILL (out of memory?)")],
)
def test_a_crash_fails_one_measurement_and_the_next_one_runs(
    measurer, tiny_ir, behaviour, signal_name
):
    failure = measurer(f"fake-replay:{behaviour}").measure_one(tiny_ir)
    assert isinstance(failure, MeasurementFailure)
    assert failure.kind == "crash" and signal_name in failure.reason
    assert isinstance(measurer("fake-replay:ok").measure_one(tiny_ir), Measurement)


def test_a_hang_is_killed_after_the_timeout(measurer, tiny_ir):
    protocol = MeasurementProtocol(warmup=0, repeats=3, min_repeat_ms=1.0, timeout_s=3.0)
    start = time.perf_counter()
    failure = measurer("fake-replay:hang", protocol).measure_one(tiny_ir)
    assert isinstance(failure, MeasurementFailure) and failure.kind == "timeout"
    assert "3 s" in failure.reason and time.perf_counter() - start < 30
    assert isinstance(measurer("fake-replay:ok").measure_one(tiny_ir), Measurement)


def test_a_compiler_that_crashes_or_hangs_fails_one_model_and_the_caller_lives_on(
    measurer, tiny_ir
):
    failure = measurer("fake-replay:compile-segv").measure_one(tiny_ir)
    assert isinstance(failure, MeasurementFailure) and failure.kind == "compile"
    assert "crashed in its isolated worker" in failure.reason and "SIGSEGV" in failure.reason
    protocol = MeasurementProtocol(warmup=0, repeats=3, min_repeat_ms=1.0, compile_timeout_s=2.0)
    start = time.perf_counter()
    failure = measurer("fake-replay:compile-hang", protocol).measure_one(tiny_ir)
    assert isinstance(failure, MeasurementFailure) and failure.kind == "compile"
    assert "did not finish" in failure.reason and "2 s" in failure.reason
    assert time.perf_counter() - start < 30
    assert isinstance(measurer("fake-replay:ok").measure_one(tiny_ir), Measurement)


def test_a_search_whose_compiler_crashes_marks_that_candidate_failed_and_goes_on(
    measurer, tiny_ir, tmp_path
):
    import hwnas
    from hwnas.model.search_space import Gene, SearchSpace

    crashing, working = measurer("fake-replay:compile-segv"), measurer("fake-replay:ok")

    def evaluate(subnet):  # the compiler segfaults on every subnet with crash=1
        chosen = crashing if subnet["crash"] else working
        return {"latency": chosen.measure(tiny_ir).median_ms, "size": float(subnet["size"])}

    space = SearchSpace("compile-crash", [Gene("crash", (0, 1)), Gene("size", (1, 2, 3, 4))])
    out = tmp_path / "run"
    result = hwnas.search(
        space, evaluate, ("latency", "size:min"), strategy="random", budget=8, out=out
    )
    failed = [e for e in result.evaluations if e.subnet["crash"]]
    assert len(result.evaluations) == 8 and failed and len(failed) < 8
    assert all("SIGSEGV" in (e.error or "") for e in failed)
    assert (out / "evaluations.csv").read_text().count("SIGSEGV") == len(failed)
    resumed = hwnas.search(
        space, evaluate, ("latency", "size:min"), strategy="random", budget=8, out=out, resume=True
    )  # a stored failure is not compiled again
    assert [e.key for e in resumed.evaluations] == [e.key for e in result.evaluations]
    assert sum(1 for e in resumed.evaluations if e.error) == len(failed)

    crashing = working  # the compiler is fixed: asked to, the resumed run measures them again
    with pytest.raises(ConfigError, match="needs a run to resume"):
        hwnas.search(space, evaluate, ("latency", "size:min"), budget=8, out=out, retry_failed=True)
    retried = hwnas.search(
        space, evaluate, ("latency", "size:min"), strategy="random", budget=8, out=out,
        resume=True, retry_failed=True,
    )  # fmt: skip
    assert [e.key for e in retried.evaluations] == [e.key for e in result.evaluations]
    assert not any(e.error for e in retried.evaluations)
    assert "SIGSEGV" not in (out / "evaluations.csv").read_text()


def test_noisy_results_are_measured_again_and_flagged(measurer, tiny_ir):
    protocol = MeasurementProtocol(
        warmup=0, repeats=6, min_repeat_ms=0.0, cv_threshold=0.01, max_remeasure=2
    )
    result = measurer("fake-replay:noisy", protocol).measure(tiny_ir)
    assert result.noisy and result.cv > 0.01
    assert len(result.discarded_s) == 2  # three attempts, the least noisy kept
    assert all(Statistics.of(a).cv >= result.cv for a in result.discarded_s)


def test_a_lost_device_is_retried_and_counted(measurer, tiny_ir):
    result = measurer("fake-remote:lost").measure(tiny_ir)
    assert result.retries == 1


def test_a_device_that_stays_lost_fails_after_the_retries(measurer, tiny_ir):
    failure = measurer("fake-remote:dead").measure_one(tiny_ir)
    assert isinstance(failure, MeasurementFailure) and failure.kind == "device_lost"
    assert f"lost {FAST.device_retries + 1} time(s)" in failure.reason


def test_measure_many_keeps_order_and_goes_on_after_failures(measurer, tiny_ir):
    import torch

    from hwnas.ir import GraphIR

    other = GraphIR.from_module(
        torch.nn.Sequential(torch.nn.Linear(8, 3)).eval(), (torch.randn(2, 8),)
    )
    seen = []
    results = measurer("fake-remote:ok").measure_many(
        [tiny_ir, other, tiny_ir], on_result=lambda i, r: seen.append(i)
    )
    assert [r.ir_key for r in results] == [tiny_ir.key, other.key, tiny_ir.key]
    assert sorted(seen) == [0, 1, 2]
    # two "boards": two worker slots were used in parallel
    assert len({r.device["pid"] for r in results}) == 2


# -- cache -------------------------------------------------------------------------------------


def test_second_measurement_is_a_cache_hit(measurer, tiny_ir, tmp_path):
    cache = MeasurementCache(tmp_path / "cache.sqlite")
    first = measurer("fake-replay:ok", cache=cache).measure(tiny_ir)
    m = measurer("fake-replay:ok", cache=cache)
    start = time.perf_counter()
    second = m.measure(tiny_ir)
    elapsed = time.perf_counter() - start
    assert second.cached and not first.cached
    assert second == first and second.samples_s == first.samples_s
    assert elapsed < 0.05
    other_protocol = measurer(
        "fake-replay:ok", MeasurementProtocol(repeats=4, min_repeat_ms=1.0), cache=cache
    )
    assert not other_protocol.measure(tiny_ir).cached
    assert len(cache) == 2


def test_cache_persists_across_instances(tmp_path, measurer, tiny_ir):
    path = tmp_path / "c"
    measured = measurer("fake-replay:ok", cache=path).measure(tiny_ir)
    reopened = MeasurementCache(path)
    assert [m.median_s for m in reopened.for_model(tiny_ir.key)] == [measured.median_s]


def test_compiled_artifact_is_reused_and_checked(measurer, tiny_ir):
    m = measurer("fake-replay:ok")
    first = m.compile(tiny_ir)
    assert m.compile(tiny_ir) == first
    Path(first.path()).write_bytes(b"tampered")
    again = m.compile(tiny_ir)  # the tampered artifact is recompiled, not trusted
    again.verify()


def test_timing_waits_for_the_machine_wide_lock_of_its_cores(
    measurer, tiny_ir, tmp_path, monkeypatch
):
    import threading

    from hwnas.measurement.timing_lock import cores_locked, usable_core_ids

    monkeypatch.setenv("HWNAS_TIMING_LOCK_DIR", str(tmp_path / "locks"))
    held = threading.Event()

    def another_process_timing() -> None:  # flock locks are per open file: a thread stands in
        with cores_locked(usable_core_ids()):
            held.set()
            time.sleep(1.5)

    thread = threading.Thread(target=another_process_timing)
    thread.start()
    held.wait(10)
    result = measurer("fake-replay:ok").measure(tiny_ir)
    thread.join()
    assert result.cores == usable_core_ids()
    assert result.lock_wait_s > 1.0  # it waited for the other timing to finish
    assert Measurement.from_dict(result.to_dict()).cores == result.cores


def test_leftovers_of_killed_processes_are_swept(measurer, tiny_ir, tmp_path):
    import subprocess
    import sys

    from hwnas.measurement.isolation import WorkerPool as Pool

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    m = measurer("fake-replay:ok")
    kind_dir = m.artifacts.path(tiny_ir).parent
    kind_dir.mkdir(parents=True)
    stale = kind_dir / f".{tiny_ir.key[:16]}-pid{gone}-abc"
    stale.mkdir()
    ours = kind_dir / f".{tiny_ir.key[:16]}-pid{os.getpid()}-abc"
    ours.mkdir()
    m.measure(tiny_ir)
    assert not stale.exists() and ours.exists()  # a live process's folder is left alone
    import tempfile

    log = Path(tempfile.gettempdir()) / f"hwnas-worker-0-pid{gone}-xyz.log"
    log.write_text("old")
    Pool().close()
    assert not log.exists()


def test_a_module_of_a_local_class_is_compiled_here_and_said_once(measurer, caplog):
    import torch

    from hwnas.ir import GraphIR

    class Local(torch.nn.Module):  # another process cannot import it
        def __init__(self) -> None:
            super().__init__()
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.fc(x))

    torch.manual_seed(0)
    ir = GraphIR.from_module(Local().eval(), (torch.randn(2, 8),), name="local")
    with caplog.at_level("WARNING", logger="hwnas.measurement"):
        assert measurer("fake-replay:ok").measure(ir).median_s > 0
    assert "compiled in this process" in caplog.text and "Local" in caplog.text
