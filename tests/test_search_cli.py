"""``hwnas search`` end to end on the NAS-Bench-201 tables, bad input (exit 2), resume; and the NB201 module."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cli_runner import run_main

from hwnas.search_core import nb201
from hwnas.search_core.run_store import RunStore

needs_tables = pytest.mark.skipif(
    not (nb201.data_dir() / "latency_ms.csv").is_file(),
    reason=f"NAS-Bench-201 tables not found in {nb201.data_dir()} (set {nb201.DATA_ENV})",
)


@needs_tables
def test_search_nb201_end_to_end_and_resume(plugin_host, tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    args = [
        "search",
        "--space",
        "nb201",
        "--target",
        "raspi4",
        "--strategy",
        "linas",
        "--budget",
        "30",
        "--constraint",
        "latency<=20ms",
        "--out",
        str(out),
        "--quiet",
    ]
    code, stdout, stderr = run_main(args, capsys)
    assert code == 0, stderr
    assert "Pareto front" in stdout and "hypervolume" in stdout
    for name in (
        "evaluations.csv",
        "pareto.csv",
        "pareto.json",
        "pareto.png",
        "hypervolume.csv",
        "search.sqlite",
    ):
        assert (out / name).is_file(), name
    pareto = json.loads((out / "pareto.json").read_text())["pareto"]
    assert pareto and all(p["values"]["latency"] <= 20 for p in pareto)

    code, _, stderr = run_main(args, capsys)  # the same --out again without --resume
    assert code == 2 and "already holds 30 evaluation(s)" in stderr and "--resume" in stderr
    assert "Traceback" not in stderr
    with RunStore.in_directory(out) as store:
        assert store.count() == 30  # nothing lost

    code, stdout, stderr = run_main([*args[:8], "45", *args[9:], "--resume", "--json"], capsys)
    assert code == 0, stderr
    assert isinstance(json.loads(stdout), list)
    with (out / "evaluations.csv").open() as f:
        keys = [r["key"] for r in csv.DictReader(f)]
    assert len(keys) == len(set(keys)) == 45


@needs_tables
@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--constraint", "latency<5"], "cannot read constraint 'latency<5'"),
        (["--constraint", "latency<=5M"], "unit 'M' does not fit 'latency'"),
        (["--target", "jetson"], "no NAS-Bench-201 latency table for device 'jetson'"),
        (["--strategy", "bayes"], "unknown search strategy 'bayes'"),
        (["--objectives", "accuracy,macs"], "no 'macs'"),
        (["--set", "population_size"], "expected NAME=VALUE"),
        (["--set", "population_size=big"], "cannot read 'big' as int"),
        (["--budget", "0"], "budget must be at least 1"),
        (["--statistics", "ir"], "--statistics is for supernet searches"),
        (
            ["--objectives", "accuracy,latency@jetson"],
            "no NAS-Bench-201 latency table for device 'jetson'",
        ),
    ],
)
def test_bad_input_exits_2_with_one_clear_message(
    plugin_host, tmp_path: Path, capsys, extra, message
) -> None:
    args = [
        "search",
        "--space",
        "nb201",
        "--target",
        "raspi4",
        "--out",
        str(tmp_path / "r"),
        "--quiet",
        *extra,
    ]
    code, _, stderr = run_main(args, capsys)
    assert code == 2
    assert message in stderr and stderr.startswith("error: ") and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) <= 2


def test_unknown_statistics_exit_2(plugin_host, tmp_path: Path, capsys) -> None:
    args = ["search", "--target", "torch:cpu", "--statistics", "ir,flops", "--out", str(tmp_path)]
    code, _, stderr = run_main(args, capsys)
    assert code == 2 and "--statistics: unknown 'flops'" in stderr and "Traceback" not in stderr


def test_unknown_supernet_exits_2(plugin_host, tmp_path: Path, capsys) -> None:
    args = ["search", "--supernet", "no-such-net", "--target", "torch:cpu", "--out", str(tmp_path)]
    code, _, stderr = run_main(args, capsys)
    assert code == 2 and "no-such-net" in stderr and "Traceback" not in stderr


def test_missing_tables_say_where_to_point(
    plugin_host, tmp_path: Path, capsys, monkeypatch
) -> None:
    monkeypatch.setenv(nb201.DATA_ENV, str(tmp_path / "nowhere"))
    code, _, stderr = run_main(
        ["search", "--space", "nb201", "--target", "raspi4", "--out", str(tmp_path / "r")], capsys
    )
    assert code == 2 and "not found" in stderr and nb201.DATA_ENV in stderr


@needs_tables
def test_nb201_space_tables_and_kernels() -> None:
    space = nb201.search_space()
    assert space.size() == 15625
    tables = nb201.NB201Tables.load()
    text = "|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_3x3~1|avg_pool_3x3~2|"
    subnet = nb201.subnet_from_arch_string(space, text)
    assert nb201.arch_string(subnet) == text
    values = nb201.NB201Provider(tables, "raspi4").measure(subnet).values
    assert values["accuracy"] == pytest.approx(0.8834)  # 88.34 % in cifar10_accuracy.csv
    assert values["latency"] == tables.latency["raspi4"][text]
    assert len(tables.candidates(space)) == 725
    kernels = nb201.kernel_keys(subnet)
    assert kernels[0] == nb201.BASE_KERNEL and len(kernels) == 7
    measure = nb201.kernel_measurer(tables, "raspi4")
    assert measure("node1_from0:skip_connect") == 0.0 and measure(nb201.BASE_KERNEL) > 0
    accuracy, latency = tables.objectives(
        ["accuracy", "latency"], tables.candidates(space), "raspi4"
    )
    assert accuracy.bounds[1] == pytest.approx(0.9136) and latency.bounds[0] > 0


@needs_tables
def test_kernel_lut_on_nb201_picks_its_correction_by_cross_validation(plugin_host) -> None:
    import numpy as np

    from hwnas.registry import predictor_class

    space = nb201.search_space()
    tables = nb201.NB201Tables.load()
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(600)]
    X = [nb201.kernel_keys(a) for a in archs]
    y = np.array([tables.latency_of(a, "raspi4") for a in archs])
    cls = predictor_class("kernel-lut")
    measure = nb201.kernel_measurer(tables, "raspi4")
    plain = cls(cls.settings_class(correction="none"), measure_kernel=measure).fit(X[:100], y[:100])
    auto = cls(measure_kernel=measure).fit(X[:100], y[:100])
    assert auto.kernels_measured <= 1 + 6 * 5  # one measurement per distinct kernel
    plain_q, auto_q = plain.quality(X[100:], y[100:]), auto.quality(X[100:], y[100:])
    assert auto_q.kendall_tau > 0.8
    assert auto.correction != "none" and auto_q.within_10pct > plain_q.within_10pct
