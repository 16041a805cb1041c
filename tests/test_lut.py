"""Per-kernel latency tables: file format, estimates, timing kernels alone on a real target, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hwnas.errors import ConfigError
from hwnas.measurement.kernel_table import KernelTable, measure_kernels


def test_kernel_table_round_trip_estimate_and_errors(tmp_path: Path) -> None:
    table = KernelTable(
        "torch:cpu", "abc123", {"cpu": "x"}, {"k1": 0.5, "k2": 1.25}, {"k1": "relu"}
    )
    path = table.write(tmp_path / "t.json")
    again = KernelTable.read(path)
    assert again.kernels == table.kernels and again.fingerprint_hash == "abc123"
    assert again.estimate(["k1", "k2", "k1"]) == pytest.approx(2.25)
    with pytest.raises(ConfigError, match="lacks 1 kernel"):
        again.estimate(["k3"])
    (tmp_path / "bad.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="not an hwnas kernel table"):
        KernelTable.read(tmp_path / "bad.json")
    data = json.loads(path.read_text())
    data["kernels"]["k1"]["ms"] = "fast"
    (tmp_path / "nan.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="kernel 'k1' has no finite 'ms'"):
        KernelTable.read(tmp_path / "nan.json")


@pytest.mark.slow
def test_kernels_are_timed_alone_on_torch_cpu_once(tmp_path: Path, monkeypatch) -> None:
    import torch

    from hwnas.ir import GraphIR
    from hwnas.measurement.measurer import Measurer
    from hwnas.measurement.protocol import MeasurementProtocol

    monkeypatch.setenv("HWNAS_CACHE_DIR", str(tmp_path / "cache"))
    torch.manual_seed(0)
    small = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU()
    ).eval()
    large = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8),
        torch.nn.ReLU(),
        torch.nn.Conv2d(8, 16, 3, padding=1),
    ).eval()
    irs = [GraphIR.from_module(m, torch.randn(1, 3, 16, 16)) for m in (small, large)]
    measurer = Measurer("torch:cpu?threads=1", MeasurementProtocol(repeats=3, min_repeat_ms=1))
    table = KernelTable.for_target(measurer.target, tmp_path / "luts")
    report = measure_kernels(table, irs, measurer)
    # conv+bn+relu is shared: timed once; the second conv is new
    assert report.kernels_seen == 2 and report.kernels_measured == 2 and not report.failed
    assert all(ms > 0 for ms in table.kernels.values())
    assert table.estimate(g.key for g in irs[1].kernel_groups) > table.estimate(
        g.key for g in irs[0].kernel_groups
    )
    assert measure_kernels(table, irs, measurer).kernels_measured == 0  # nothing twice


def test_lut_cli_show_and_bad_input(plugin_host, tmp_path: Path, capsys) -> None:
    from hwnas.cli import main

    path = KernelTable("torch:cpu", "abc", {}, {"conv(...)": 0.25}, {"conv(...)": "conv2d"}).write(
        tmp_path / "t.json"
    )
    main(["lut", "show", "--file", str(path), "--json"])
    assert json.loads(capsys.readouterr().out)["kernels"] == {"conv(...)": 0.25}
    with pytest.raises(SystemExit) as exit_info:
        main(["lut", "show"])
    assert exit_info.value.code == 2 and "give --target or --file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["lut", "build", "--target", "no-such-target"])
    assert exit_info.value.code == 2 and "no-such-target" in capsys.readouterr().err
