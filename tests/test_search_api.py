"""``hwnas.search`` on users' own spaces and functions: results, report files, failures, bad input, executors."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from pymoo.indicators.hv import HV
from synthetic_problems import (
    OBJECTIVES,
    conditional_evaluate,
    conditional_space,
    zdt_evaluate,
    zdt_space,
)

import hwnas
from hwnas.errors import ConfigError, UnknownNameError
from hwnas.model.search_space import Subnet
from hwnas.search_core.api import SearchResult
from hwnas.search_core.evaluator import Evaluator, Metrics, ObjectiveProvider
from hwnas.search_core.executor import InProcessExecutor, ProcessPoolExecutor
from hwnas.search_core.executor_spec import make_executor
from hwnas.search_core.objectives import (
    Constraint,
    Objective,
    constrained_ranks,
    hypervolume,
    pareto_mask,
    parse_objectives,
)


def test_search_returns_a_measured_front_and_a_monotone_hypervolume(plugin_host) -> None:
    result = hwnas.search(
        zdt_space(), zdt_evaluate, OBJECTIVES, strategy="nsga2", budget=60, seed=0
    )
    assert isinstance(result, SearchResult) and result.strategy == "nsga2"
    assert len(result.evaluations) == len(result.hypervolume) == 60
    assert np.all(np.diff(result.hypervolume) >= 0) and result.hypervolume[-1] > 0
    measured = {e.key: e for e in result.evaluations}
    F = np.array([[e.values["f1"], e.values["f2"]] for e in result.evaluations])
    assert {e.key for e in result.pareto} == {
        result.evaluations[i].key for i in np.flatnonzero(pareto_mask(F))
    }
    assert all(measured[e.key] is e for e in result.pareto)  # the front is made of real evaluations
    assert [e.values["f1"] for e in result.pareto] == sorted(e.values["f1"] for e in result.pareto)
    assert result.best("f1") is result.pareto[0]
    with pytest.raises(ConfigError):
        result.best("latency")


def test_run_directory_holds_every_report(plugin_host, tmp_path: Path) -> None:
    result = hwnas.search(
        conditional_space(),
        conditional_evaluate,
        ["accuracy", "latency"],
        strategy="evolution",
        budget=15,
        constraints=["latency<=4.5ms"],
        out=tmp_path,
        seed=0,
    )
    with (tmp_path / "evaluations.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 15 and {
        "key",
        "depth",
        "width3",
        "accuracy",
        "latency",
        "feasible",
        "error",
    } <= set(rows[0])
    assert sum(int(r["feasible"]) for r in rows) == sum(e.feasible for e in result.evaluations)
    pareto = json.loads((tmp_path / "pareto.json").read_text())
    assert [p["key"] for p in pareto["pareto"]] == [e.key for e in result.pareto]
    assert pareto["constraints"] == ["latency<=4.5ms"]
    assert all(p["values"]["latency"] <= 4.5 for p in pareto["pareto"])
    with (tmp_path / "pareto.csv").open() as f:
        assert len(list(csv.DictReader(f))) == len(result.pareto)
    with (tmp_path / "hypervolume.csv").open() as f:
        series = list(csv.DictReader(f))
    assert [int(r["evaluations"]) for r in series] == list(range(1, 16))
    assert float(series[-1]["hypervolume"]) == pytest.approx(result.hypervolume[-1], abs=1e-6)
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"


def test_failed_evaluations_are_recorded_and_the_search_goes_on(
    plugin_host, tmp_path: Path
) -> None:
    def flaky(subnet: Subnet) -> dict[str, float]:
        if subnet["x1"] == 2:
            raise RuntimeError("device lost while measuring x1=2\nsecond line")
        return zdt_evaluate(subnet)

    result = hwnas.search(
        zdt_space(), flaky, OBJECTIVES, strategy="linas", budget=50, out=tmp_path, seed=1
    )
    assert len(result.evaluations) == 50
    assert result.failed and all(e.subnet["x1"] == 2 for e in result.failed)
    assert all(e.error == "RuntimeError: device lost while measuring x1=2" for e in result.failed)
    assert all(math.isinf(e.violation) and not e.feasible for e in result.failed)
    assert not {e.key for e in result.failed} & {e.key for e in result.pareto}
    with (tmp_path / "evaluations.csv").open() as f:
        assert sum(bool(r["error"]) for r in csv.DictReader(f)) == len(result.failed)


def test_providers_merge_and_fingerprint(plugin_host) -> None:
    class Latency(ObjectiveProvider):
        @property
        def provides(self) -> tuple[str, ...]:
            return ("latency",)

        def measure(self, subnet: Subnet) -> Metrics:
            value = 0.1 * subnet["width1"]
            return Metrics({"latency": value}, latency_samples=(value, value * 1.01, value * 0.99))

        def fingerprint(self) -> str:
            return "fake-board#1"

    class Accuracy(ObjectiveProvider):
        @property
        def provides(self) -> tuple[str, ...]:
            return ("accuracy",)

        def measure(self, subnet: Subnet) -> Metrics:
            return Metrics({"accuracy": conditional_evaluate(subnet)["accuracy"]})

    result = hwnas.search(
        conditional_space(),
        [Accuracy(), Latency()],
        ["accuracy", "latency"],
        strategy="random",
        budget=5,
    )
    assert all(
        e.fingerprint == "fake-board#1" and len(e.latency_samples) == 3 for e in result.evaluations
    )
    with pytest.raises(ConfigError, match="no objective provider gives 'accuracy'"):
        Evaluator([Latency()], parse_objectives(["accuracy", "latency"]))


@pytest.mark.parametrize(
    ("evaluate", "message"),
    [
        (lambda s: {"f1": 1.0}, "returned no 'f2'"),
        (lambda s: [1.0, 2.0], "returned list"),
        (lambda s: {"f1": "fast", "f2": 1.0}, "'fast' is not a number"),
    ],
)
def test_broken_evaluate_functions_are_config_errors(plugin_host, evaluate, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        hwnas.search(zdt_space(), evaluate, OBJECTIVES, strategy="random", budget=3)


def test_non_finite_metric_fails_that_subnet_only(plugin_host) -> None:
    result = hwnas.search(
        zdt_space(),
        lambda s: {"f1": float("nan") if s["x0"] == 0 else 1.0, "f2": 1.0},
        OBJECTIVES,
        strategy="random",
        budget=40,
        seed=0,
    )
    assert all(
        ("non-finite f1=nan" == e.error) == (e.subnet["x0"] == 0) for e in result.evaluations
    )


def test_bad_arguments_are_reported_before_anything_runs(plugin_host, tmp_path: Path) -> None:
    space = zdt_space()
    with pytest.raises(UnknownNameError, match="unknown search strategy 'nsga3'"):
        hwnas.search(space, zdt_evaluate, OBJECTIVES, strategy="nsga3")
    with pytest.raises(ConfigError, match="budget must be at least 1"):
        hwnas.search(space, zdt_evaluate, OBJECTIVES, budget=0)
    with pytest.raises(ConfigError, match="cannot read constraint"):
        hwnas.search(space, zdt_evaluate, OBJECTIVES, constraints=["f1 < 3"])
    with pytest.raises(ConfigError, match="no setting 'pop'"):
        hwnas.search(space, zdt_evaluate, OBJECTIVES, settings={"pop": "3"})
    with pytest.raises(ConfigError, match="unknown objective 'f1'"):
        hwnas.search(space, zdt_evaluate, ["f1", "f2"])
    with pytest.raises(ConfigError, match="unknown executor"):
        hwnas.search(space, zdt_evaluate, OBJECTIVES, executor="threads")
    assert not (tmp_path / "search.sqlite").exists()


def test_an_existing_run_needs_resume_and_the_same_search(plugin_host, tmp_path: Path) -> None:
    space = zdt_space()
    hwnas.search(space, zdt_evaluate, OBJECTIVES, strategy="random", budget=8, out=tmp_path)
    with pytest.raises(ConfigError, match="already holds 8 evaluation"):
        hwnas.search(space, zdt_evaluate, OBJECTIVES, strategy="random", budget=8, out=tmp_path)
    with pytest.raises(ConfigError, match="strategy: stored 'random', now 'nsga2'"):
        hwnas.search(
            space, zdt_evaluate, OBJECTIVES, strategy="nsga2", budget=8, out=tmp_path, resume=True
        )
    more = hwnas.search(
        space, zdt_evaluate, OBJECTIVES, strategy="random", budget=12, out=tmp_path, resume=True
    )
    assert len(more.evaluations) == 12


@pytest.mark.parametrize(
    ("text", "metric", "op", "bound"),
    [
        ("latency<=5ms", "latency", "<=", 5.0),
        ("latency <= 250us", "latency", "<=", 0.25),
        ("latency<=0.01s", "latency", "<=", 10.0),
        ("macs<=50M", "macs", "<=", 50e6),
        ("params<=1.5K", "params", "<=", 1500.0),
        ("peak_memory<=2MiB", "peak_memory", "<=", 2 * 1024**2),
        ("accuracy>=0.9", "accuracy", ">=", 0.9),
        ("accuracy>=90%", "accuracy", ">=", 0.9),
        ("energy<=3", "energy", "<=", 3.0),
    ],
)
def test_constraints_parse_units(text: str, metric: str, op: str, bound: float) -> None:
    constraint = Constraint.parse(text)
    assert (constraint.metric, constraint.op) == (metric, op)
    assert constraint.bound == pytest.approx(bound)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("latency<5ms", "cannot read constraint"),
        ("latency<=5M", "unit 'M' does not fit 'latency'"),
        ("macs<=50ms", "unit 'ms' does not fit 'macs'"),
        ("energy<=3J", "units allowed for energy: none"),
        ("<=5", "cannot read constraint"),
    ],
)
def test_bad_constraints_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Constraint.parse(text)


def test_constraint_violation_is_relative_to_the_bound() -> None:
    latency = Constraint.parse("latency<=5ms")
    accuracy = Constraint.parse("accuracy>=0.8")
    assert latency.violation(4.0) == 0 and latency.violation(6.0) == pytest.approx(0.2)
    assert latency.slack(4.0) == pytest.approx(-0.2)
    assert accuracy.violation(0.9) == 0 and accuracy.violation(0.6) == pytest.approx(0.25)


def test_objectives_parse() -> None:
    accuracy, energy = parse_objectives("accuracy,energy:min")
    assert accuracy == Objective("accuracy", "max", "fraction")
    assert energy == Objective("energy", "min")
    assert energy.minimised(3.0) == 3.0 and accuracy.minimised(0.9) == -0.9
    with pytest.raises(ConfigError, match="listed twice"):
        parse_objectives("latency,latency")
    with pytest.raises(ConfigError, match="'min' or 'max'"):
        parse_objectives("energy:low")


def test_hypervolume_matches_pymoo_and_front_helpers() -> None:
    rng = np.random.default_rng(0)
    for m in (2, 3):
        F = rng.random((30, m))
        expected = HV(ref_point=np.ones(m)).do(F)
        assert hypervolume(F, np.zeros(m), np.ones(m)) == pytest.approx(expected)
    assert (
        hypervolume(np.array([[2.0, 2.0]]), np.zeros(2), np.ones(2)) == 0.0
    )  # outside the box adds nothing
    F = np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0]])
    assert pareto_mask(F).tolist() == [True, True, False, False]
    ranks = constrained_ranks(F, np.array([0.0, 0.0, 0.0, 0.5]))
    assert ranks.tolist() == [0.0, 0.0, 1.0, 2.0]


def test_executors() -> None:
    assert isinstance(make_executor(None), InProcessExecutor)
    assert make_executor("process:3").workers == 3
    with pytest.raises(ConfigError):
        make_executor("process:x")

    def task(i: int) -> int:
        if i == 2:
            os._exit(1)  # kills its worker, and the pool with it
        return i * i

    with ProcessPoolExecutor(2) as executor:
        results = {r.index: r for r in executor.map_unordered(task, [0, 1, 2, 3, 4])}
        assert {i: results[i].value for i in (0, 1, 3, 4)} == {0: 0, 1: 1, 3: 9, 4: 16}
        assert results[2].value is None and "worker process died" in (results[2].error or "")
        assert sorted(r.value for r in executor.map_unordered(task, [5, 6])) == [
            25,
            36,
        ]  # a fresh pool


def test_process_executor_search_marks_crashed_subnets_failed(plugin_host) -> None:
    def evaluate(subnet: Subnet) -> dict[str, float]:
        if subnet["x1"] == 0:
            os._exit(1)  # a crash in a worker fails that subnet, not the search
        return zdt_evaluate(subnet)

    space = zdt_space()
    result = hwnas.search(
        space, evaluate, OBJECTIVES, strategy="random", budget=12, executor="process:2", seed=4
    )
    reference = hwnas.search(space, zdt_evaluate, OBJECTIVES, strategy="random", budget=12, seed=4)
    assert {e.key for e in result.evaluations} == {e.key for e in reference.evaluations}
    crashed = [e for e in result.evaluations if e.subnet["x1"] == 0]
    assert crashed and all("worker process died" in (e.error or "") for e in crashed)
    assert all(
        e.values == zdt_evaluate(e.subnet) for e in result.evaluations if e.subnet["x1"] != 0
    )


def test_a_fitted_predictor_serves_as_a_proxy_objective(plugin_host) -> None:
    from hwnas.registry import predictor_class
    from hwnas.search_core.evaluator import FunctionProvider, PredictorProvider

    space = conditional_space()
    samples = [space.sample(i) for i in range(40)]
    latency = predictor_class("ridge").with_target("log")
    latency.fit(
        space.features_matrix(samples), [conditional_evaluate(s)["latency"] for s in samples]
    )
    providers = [
        FunctionProvider(
            lambda s: {"accuracy": conditional_evaluate(s)["accuracy"]}, provides=("accuracy",)
        ),
        PredictorProvider("latency", latency, space.features),
    ]
    result = hwnas.search(
        space, providers, ["accuracy", "latency"], strategy="random", budget=10, seed=0
    )
    assert all(e.fingerprint == "predicted:ridge" for e in result.evaluations)
    predicted = latency.predict(space.features_matrix([e.subnet for e in result.evaluations]))
    assert [e.values["latency"] for e in result.evaluations] == pytest.approx(predicted.tolist())
    truth = [conditional_evaluate(e.subnet)["latency"] for e in result.evaluations]
    assert np.corrcoef(predicted, truth)[0, 1] > 0.9
