"""The ``hwnas`` command line: version, plugins, targets, exit codes, and a fast ``--help``."""

from __future__ import annotations

import json
import subprocess
import sys

from cli_runner import run_hwnas
from plugin_fakes import write_entry_point_dist

import hwnas


def test_version():
    result = run_hwnas("--version")
    assert result.returncode == 0
    assert hwnas.__version__ in result.stdout


def test_help_lists_commands_without_importing_torch_or_tvm():
    code = (
        "import sys\n"
        "from hwnas.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'tvm', 'onnxruntime', 'onnx', 'sklearn', 'pymoo') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "plugins" in result.stdout and "targets" in result.stdout
    assert "HEAVY []" in result.stdout, result.stdout


def test_plugins_lists_builtins_and_the_example_plugin():
    result = run_hwnas("plugins", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["example"]["package"] == "hwnas-example-plugin"
    assert rows["example"]["status"] == "ok"
    assert rows["hwnas_targets.onnxruntime_target"]["builtin"] is True
    assert "target:onnxruntime" in rows["hwnas_targets.onnxruntime_target"]["provides"]


def test_autoload_off_shows_only_builtins():
    result = run_hwnas("plugins", "--json", env={"HWNAS_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert result.returncode == 0
    rows = json.loads(result.stdout)
    assert rows and all(row["builtin"] for row in rows)


def test_broken_plugin_shows_as_broken_with_one_line_and_no_traceback(tmp_path):
    write_entry_point_dist(tmp_path, "hwnas-broken", "broken", "no_such_plugin_module")
    env = {"PYTHONPATH": str(tmp_path)}
    table = run_hwnas("plugins", env=env)
    assert table.returncode == 0
    assert "Traceback" not in table.stdout + table.stderr
    assert "broken: ModuleNotFoundError" in table.stdout
    rows = {row["name"]: row for row in json.loads(run_hwnas("plugins", "--json", env=env).stdout)}
    status = rows["broken"]["status"]
    assert status == "broken: ModuleNotFoundError: No module named 'no_such_plugin_module'"
    assert rows["broken"]["package"] == "hwnas-broken"


def test_targets_reports_availability_and_fingerprint():
    result = run_hwnas("targets", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["target"]: row for row in json.loads(result.stdout)}
    assert rows["onnxruntime:cpu"]["available"] is True
    assert rows["onnxruntime:cpu"]["fingerprint"]
    assert "example/ort-1thread" in rows  # presets from plugins are listed too
    for row in rows.values():
        if "available" in row and not row["available"]:
            assert row["reason"], f"{row['target']} unavailable without a reason"


def test_unknown_command_exits_2():
    result = run_hwnas("frobnicate")
    assert result.returncode == 2
    assert "No such command" in result.stderr


def _run_failing_command(debug: bool) -> subprocess.CompletedProcess[str]:
    code = (
        "import click, sys\n"
        "from hwnas.cli import cli, main\n"
        "from hwnas.errors import ConfigError\n"
        "@cli.command()\n"
        "def fail():\n"
        "    raise ConfigError('subnet.json: gene \\'stage1.depth\\' = 9 is not allowed', hint='allowed values: [2, 3, 4]')\n"
        f"main({['--debug', 'fail'] if debug else ['fail']!r})\n"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_user_error_is_two_lines_and_exit_2():
    result = _run_failing_command(debug=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: subnet.json: gene 'stage1.depth' = 9 is not allowed",
        "  hint: allowed values: [2, 3, 4]",
    ]


def test_debug_shows_the_traceback():
    result = _run_failing_command(debug=True)
    assert result.returncode != 0
    assert "Traceback" in result.stderr and "ConfigError" in result.stderr
