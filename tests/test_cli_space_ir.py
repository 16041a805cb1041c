"""``hwnas space show``, ``hwnas subnet sample`` and ``hwnas ir``: output, JSON, and exit code 2 on bad input."""

from __future__ import annotations

import json

import pytest
from cli_runner import run_hwnas

from hwnas.cli import main
from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process (plugins from the test's fresh host); returns (exit code, out, err)."""
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_space_show_json_and_table(plugin_host, capsys):
    code, out, _ = run(capsys, "space", "show", "ofa-mbv3", "--preset", "full", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["size"] == OFAMobileNetV3(preset="full").space.size()
    assert data["arguments"]["preset"] == "full"
    genes = {g["gene"]: g for g in data["genes"]}
    assert genes["s1.b0.kernel"]["choices"] == [3, 5, 7]
    assert genes["s1.b3.kernel"]["active_if"] == "s1.depth in [4]"
    code, out, _ = run(
        capsys, "space", "show", "elastic-transformer", "--preset", "tiny", "--set", "heads=2"
    )
    assert code == 0
    assert "elastic-transformer (tiny)" in out and "l0.heads" in out and "subnets" in out


def test_subnet_sample_prints_canonical_json(plugin_host, capsys):
    space = OFAMobileNetV3(preset="tiny").space
    code, out, _ = run(capsys, "subnet", "sample", "ofa-mbv3", "--smallest")
    assert code == 0
    assert json.loads(out) == {"space": "ofa-mbv3", "config": space.smallest().to_dict()}
    code, out, _ = run(capsys, "subnet", "sample", "ofa-mbv3", "--largest", "--key")
    assert json.loads(out)["key"] == space.largest().key
    _, first, _ = run(capsys, "subnet", "sample", "ofa-mbv3", "--seed", "5")
    _, again, _ = run(capsys, "subnet", "sample", "ofa-mbv3", "--seed", "5")
    assert first == again and space.subnet(json.loads(first)["config"]) == space.sample(5)
    code, _, err = run(capsys, "subnet", "sample", "ofa-mbv3", "--smallest", "--largest")
    assert code == 2 and "exclude each other" in err


def test_ir_command_tables_json_and_onnx(plugin_host, capsys, tmp_path):
    from hwnas.ir import GraphIR

    supernet = OFAMobileNetV3(preset="tiny")
    subnet = supernet.space.sample(2)
    path = tmp_path / "subnet.json"
    path.write_text(subnet.to_json())
    code, out, err = run(
        capsys, "ir", "ofa-mbv3", str(path), "--json", "--onnx", str(tmp_path / "s.onnx")
    )
    assert code == 0, err
    data = json.loads(out)
    expected = GraphIR.from_subnet(supernet, supernet.build(), subnet)
    assert data["key"] == expected.key
    assert data["totals"] == expected.totals()
    assert data["metadata"]["subnet"] == subnet.to_dict()
    assert (tmp_path / "s.onnx").stat().st_size > 0
    code, out, _ = run(capsys, "ir", "ofa-mbv3", str(path))
    assert code == 0
    assert "kernel groups" in out and "conv2d+batch_norm+hardswish" in out
    assert f"{expected.macs:,}" in out and expected.key in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("space", "show", "no-such-net"), "unknown supernet 'no-such-net'"),
        (("space", "show", "ofa-mbv3", "--preset", "huge"), "no preset 'huge'"),
        (("space", "show", "ofa-mbv3", "--set", "num_classes"), "expected FIELD=VALUE"),
        (("space", "show", "ofa-mbv3", "--set", "depths=two"), "'depths' = 'two'"),
        (("subnet", "sample", "elastic-resnet", "--set", "colour=red"), "no setting 'colour'"),
    ],
)
def test_bad_arguments_exit_2_with_one_clear_line(plugin_host, capsys, args, message):
    code, out, err = run(capsys, *args)
    assert code == 2
    assert message in err and err.startswith("error: ")
    assert "Traceback" not in err


def test_bad_subnet_files_exit_2(plugin_host, capsys, tmp_path):
    config = OFAMobileNetV3(preset="tiny").space.smallest().to_dict()
    config["s2.b0.kernel"] = 4
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"space": "ofa-mbv3", "config": config}))
    code, _, err = run(capsys, "ir", "ofa-mbv3", str(bad))
    assert code == 2
    assert "'s2.b0.kernel' = 4 is not allowed" in err and "[3, 5, 7]" in err
    code, _, err = run(capsys, "ir", "elastic-resnet", str(bad))
    assert code == 2 and "space 'ofa-mbv3', not 'elastic-resnet'" in err
    code, _, err = run(capsys, "ir", "ofa-mbv3", str(tmp_path / "missing.json"))
    assert code == 2 and "does not exist" in err


def test_real_command_line_round_trip(tmp_path):
    sampled = run_hwnas("subnet", "sample", "elastic-resnet", "--seed", "1")
    assert sampled.returncode == 0, sampled.stderr
    path = tmp_path / "subnet.json"
    path.write_text(sampled.stdout)
    shown = run_hwnas("space", "show", "elastic-resnet", "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["space"] == "elastic-resnet"
    failed = run_hwnas("ir", "ofa-mbv3", str(path))
    assert failed.returncode == 2
    assert "error: " in failed.stderr and "Traceback" not in failed.stderr
