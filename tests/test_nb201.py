"""NAS-Bench-201 pieces: cell structure, the network IR against torch, the shipped statistics, the
accuracy surrogate, tables from any CSV, multi-device objectives and the three-objective CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from hwnas.errors import ConfigError
from hwnas.search_core import nb201, nb201_cell, nb201_network, nb201_statistics
from hwnas.search_core.nb201_surrogate import AccuracySurrogate
from hwnas.search_core.objectives import Constraint, parse_objectives

needs_tables = pytest.mark.skipif(
    not (nb201.data_dir() / nb201.LATENCY_FILE).is_file(),
    reason=f"NAS-Bench-201 tables not found in {nb201.data_dir()} (set {nb201.DATA_ENV})",
)
CONV3, CONV1, SKIP, POOL, NONE = (
    "nor_conv_3x3",
    "nor_conv_1x1",
    "skip_connect",
    "avg_pool_3x3",
    "none",
)


def test_cell_structure_live_edges_and_isomorphism() -> None:
    # node1 = conv3(x); node2 = none; node3 = skip(node2): node 2 has no input, the output is zero
    dead = (CONV3, NONE, NONE, NONE, NONE, SKIP)
    assert not nb201_cell.connected(dead) and nb201_cell.on_path(dead) == ()
    assert [e.op for e in nb201_cell.feeding_output(dead)] == [SKIP]
    # a conv on node 1 that only feeds node 2, which feeds nothing: a dead end
    dead_end = (CONV3, NONE, CONV1, SKIP, NONE, NONE)
    assert [e.op for e in nb201_cell.on_path(dead_end)] == [SKIP]
    assert nb201_cell.effective_ops(dead_end) == (NONE, NONE, NONE, SKIP, NONE, NONE)
    features = nb201_cell.structure_features(dead_end)
    assert features["path_nor_conv_3x3"] == 0 and features["path_skip_connect"] == 1
    assert features["connected"] == 1.0
    # nodes 1 and 2 swapped: the same network
    a = (CONV3, POOL, NONE, NONE, SKIP, CONV1)
    b = (POOL, CONV3, NONE, NONE, CONV1, SKIP)
    assert nb201_cell.canonical_form(nb201_cell.on_path(a)) == nb201_cell.canonical_form(
        nb201_cell.on_path(b)
    )
    assert nb201_cell.canonical_form(nb201_cell.on_path(a)) != nb201_cell.canonical_form(
        nb201_cell.on_path((CONV3, POOL, NONE, NONE, CONV1, SKIP))
    )


def test_repeatability_is_one_for_a_noiseless_table_and_drops_with_noise() -> None:
    cells = nb201_statistics.every_cell()[:3000]
    groups = nb201_cell.isomorphism_groups(cells)
    latency = np.zeros(len(cells))
    for index, members in enumerate(groups.values()):
        latency[members] = 1.0 + index
    exact = nb201_cell.repeatability(cells, latency)
    assert exact.pairs == 1.0 and exact.vs_group_median == 1.0 and exact.groups > 10
    noisy = latency * np.random.default_rng(0).lognormal(0, 0.2, len(latency))
    assert nb201_cell.repeatability(cells, noisy).pairs < 0.6


@pytest.mark.slow
@pytest.mark.parametrize(
    "ops",
    [
        (CONV3, CONV1, SKIP, POOL, CONV3, CONV1),
        (NONE, NONE, CONV3, SKIP, NONE, NONE),
        (CONV3, NONE, NONE, NONE, NONE, SKIP),
    ],
)
def test_network_ir_from_the_plan_equals_torch_export(ops) -> None:
    from hwnas.ir import GraphIR

    direct = nb201_network.network_ir(ops)
    module = nb201_network.network_module(ops)
    exported = GraphIR.from_module(module, (nb201_network.example_input(),))
    assert direct.totals() == exported.totals()
    assert sorted(k.key for k in direct.kernel_groups) == sorted(
        k.key for k in exported.kernel_groups
    )
    assert direct.params == sum(p.numel() for p in module.parameters())


def test_network_ir_counts_follow_the_cell() -> None:
    every_conv = nb201_network.network_ir((CONV3,) * 6)
    # 6 convs x 15 cells at 16/32/64 channels, plus stem, two reduction blocks and classifier
    cell_macs = sum(6 * 9 * c * c * (32 // 2**i) ** 2 * 5 for i, c in enumerate((16, 32, 64)))
    fixed = nb201_network.network_ir((NONE, NONE, NONE, SKIP, NONE, NONE))  # identity cells
    assert every_conv.macs == fixed.macs + cell_macs
    constant = nb201_network.network_ir((NONE,) * 6)
    assert constant.macs == 64 * 10 and len(constant.ops) == 2


def test_shipped_statistics_match_a_fresh_build() -> None:
    table = nb201_statistics.load_table()
    assert len(table) == 5**6
    rng = np.random.default_rng(0)
    cells = nb201_statistics.every_cell()
    for index in rng.choice(len(cells), size=12, replace=False):
        ops = cells[index]
        assert table[nb201_statistics.cell_code(ops)] == nb201_statistics.ir_counts(ops), ops


@needs_tables
def test_nb201_statistics_lut_sums_and_priors() -> None:
    tables = nb201.NB201Tables.load()
    space = nb201.search_space()
    statistics = nb201_statistics.NB201Statistics(tables, luts={"latency@raspi4": "raspi4"})
    assert statistics.prior("latency@raspi4") == "lut_latency@raspi4"
    assert statistics.prior("accuracy") == "macs"
    subnets = [space.sample(i) for i in range(20)]
    values = statistics.compute(subnets)
    encoded = statistics.compute_encoded(space, np.stack([space.encode(s) for s in subnets]))
    np.testing.assert_allclose(values, encoded)
    measure = nb201.kernel_measurer(tables, "raspi4")
    column = statistics.names.index("lut_latency@raspi4")
    for subnet, row in zip(subnets, values, strict=True):
        assert row[column] == pytest.approx(sum(measure(k) for k in nb201.kernel_keys(subnet)))
        assert (
            row[statistics.names.index("macs")]
            == nb201_network.network_ir(nb201.cell_ops(subnet)).macs
        )


def test_surrogate_rules() -> None:
    known = {
        (CONV3, CONV3, CONV3, CONV3, CONV3, CONV3): 0.90,
        (CONV3, POOL, NONE, NONE, SKIP, CONV1): 0.80,
        (CONV1, CONV1, CONV1, CONV1, CONV1, CONV1): 0.70,
    }
    surrogate = AccuracySurrogate(known)
    assert surrogate((NONE,) * 6) == pytest.approx(0.1)
    assert surrogate((CONV3,) * 6) == 0.90
    # the same network as a known cell (nodes swapped) gets its accuracy
    assert surrogate((POOL, CONV3, NONE, NONE, CONV1, SKIP)) == 0.80
    # one edge away from the all-conv3 cell: closer to it than to the others
    near = surrogate((CONV3, CONV3, CONV3, CONV3, CONV3, CONV1))
    assert 0.70 < near < 0.90 and near > surrogate((CONV1, CONV1, CONV1, CONV1, CONV1, CONV3))


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_tables_from_any_csv_and_multi_device_provider(tmp_path: Path) -> None:
    space = nb201.search_space()
    cells = [space.sample(i) for i in range(4)]
    archs = [nb201.arch_string(c) for c in cells]
    latency = _write(
        tmp_path / "lat.csv",
        "arch_string,jetson_latency_ms,phone_latency_ms,notes",
        [f"{a},{i + 1.0},{2 * i + 1.0},x" for i, a in enumerate(archs)],
    )
    accuracy = _write(
        tmp_path / "acc.csv",
        "arch_string,top1_accuracy",
        [f"{a},{90 - i}" for i, a in enumerate(archs[:3])],
    )
    tables = nb201.NB201Tables.from_csv(latency, accuracy)
    assert tables.devices == ("jetson", "phone")
    assert tables.accuracy[archs[0]] == pytest.approx(0.90)  # percent read as percent
    provider = nb201.NB201Provider(
        tables, nb201.latency_metrics(["accuracy", "latency@jetson", "latency@phone"], None)
    )
    assert provider.measure(cells[1]).values == {
        "accuracy": pytest.approx(0.89),
        "latency@jetson": 2.0,
        "latency@phone": 3.0,
    }
    objectives = tables.objectives(["accuracy", "latency@phone"], tables.candidates(space))
    assert objectives[1].name == "latency@phone" and objectives[1].unit == "ms"
    complete = tables.complete()
    assert complete.surrogate == 1 and archs[3] in complete.accuracy
    with pytest.raises(ConfigError, match="no NAS-Bench-201 latency table for device 'pixel3'"):
        nb201.NB201Provider(tables, "pixel3")


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("arch,raspi4_latency_ms", "x,1", "no arch_string column"),
        ("arch_string,speed", "{arch},1", "no latency column"),
        (
            "arch_string,raspi4_latency_ms",
            "{arch},fast",
            ":2: raspi4_latency_ms = 'fast' is not a number",
        ),
        ("arch_string,raspi4_latency_ms", "|conv~0|,1", "not a NAS-Bench-201 architecture string"),
    ],
)
def test_bad_tables_say_what_and_where(tmp_path: Path, header: str, row: str, message: str) -> None:
    arch = nb201.arch_string(nb201.search_space().sample(0))
    latency = _write(tmp_path / "lat.csv", header, [row.format(arch=arch)])
    accuracy = _write(tmp_path / "acc.csv", "arch_string,accuracy", [f"{arch},0.9"])
    with pytest.raises(ConfigError, match=message):
        nb201.NB201Tables.from_csv(latency, accuracy)


def test_qualified_objectives_and_constraints() -> None:
    objectives = parse_objectives("accuracy,latency:raspi4,latency@pixel3")
    assert [o.name for o in objectives] == ["accuracy", "latency@raspi4", "latency@pixel3"]
    assert objectives[1].direction == "min" and objectives[1].unit == "ms"
    assert Constraint.parse("latency@pixel3<=5ms").bound == 5.0
    assert Constraint.parse("latency@pixel3<=500us").bound == pytest.approx(0.5)
    with pytest.raises(ConfigError, match="only a built-in metric takes a qualifier"):
        parse_objectives("energy@raspi4")


@needs_tables
def test_cli_three_objective_search(plugin_host, tmp_path: Path, capsys) -> None:
    from hwnas.cli import main

    out = tmp_path / "run"
    main(
        [
            "search",
            "--space",
            "nb201-full",
            "--objectives",
            "accuracy,latency@raspi4,latency@pixel3",
            "--strategy",
            "linas",
            "--budget",
            "25",
            "--constraint",
            "latency@pixel3<=12ms",
            "--out",
            str(out),
            "--quiet",
            "--json",
        ]
    )
    front = json.loads(capsys.readouterr().out)
    assert front and all(
        set(p["values"]) == {"accuracy", "latency@raspi4", "latency@pixel3"} for p in front
    )
    assert all(p["values"]["latency@pixel3"] <= 12 for p in front)
    report = json.loads((out / "pareto.json").read_text())
    assert [o["name"] for o in report["objectives"]] == [
        "accuracy",
        "latency@raspi4",
        "latency@pixel3",
    ]
