"""``hwnas plugin new``: each kind's package is lint-clean, installs, registers and passes the kit.

The slow test pip-installs all four generated packages and runs their own
tests (the kit through hwnas's pytest plugin) as their author would; the
target is generated as ``plain-onnx``, so it is docs/PLUGINS.md's example.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_hwnas

import hwnas
from hwnas import registry
from hwnas.cli import main
from hwnas.cli.plugin_cmd import KINDS, render_plugin, write_plugin
from hwnas.plugin_manager import PluginHost

#: A name per kind; the target's is the one docs/PLUGINS.md's example has.
NAMES = {
    "target": "plain-onnx",
    "strategy": "front-walk",
    "predictor": "least-squares",
    "supernet": "elastic-mlp",
}


def hwnas_cli(*args: str) -> int:
    """Run the CLI in this process; its exit code (0 when it returns)."""
    try:
        main(list(args))
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def generate(folder: Path, *kinds: str) -> dict[str, Path]:
    """Write each kind's package, named as in NAMES, into ``folder``; their roots."""
    roots = {kind: folder / f"hwnas-{NAMES[kind]}" for kind in kinds}
    for kind, root in roots.items():
        write_plugin(kind, NAMES[kind], root)
    return roots


@pytest.mark.parametrize("kind", KINDS)
def test_plugin_new_writes_a_package(tmp_path, monkeypatch, builtin_plugin_host, capsys, kind):
    monkeypatch.chdir(tmp_path)
    assert hwnas_cli("plugin", "new", "--kind", kind, "my-thing") == 0
    root = tmp_path / "hwnas-my-thing"
    written = {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert written == set(render_plugin(kind, "my-thing"))
    assert {"pyproject.toml", "README.md", "tests/test_conformance.py"} <= written
    assert "hwnas_my_thing/__init__.py" in written
    pyproject = (root / "pyproject.toml").read_text()
    assert '[project.entry-points.hwnas]\nmy-thing = "hwnas_my_thing"' in pyproject
    assert "pip install -e hwnas-my-thing" in capsys.readouterr().out


def test_generated_code_is_lint_clean(tmp_path):
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    if ruff is None:
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    for kind in KINDS:  # a long name: lines must still fit and formatting hold
        root = tmp_path / kind
        write_plugin(kind, f"my-long-{kind}-name", root)
        for command in (
            [ruff, "check", "--no-cache", "."],
            [ruff, "format", "--no-cache", "--check", "."],
        ):
            result = subprocess.run(command, cwd=root, capture_output=True, text=True)
            assert result.returncode == 0, f"{kind}: {' '.join(command[1:])}\n{result.stdout}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--kind", "target", "My_NPU"],
            "plugin name 'My_NPU' is not lowercase words joined by '-'",
        ),
        (["--kind", "target", "2fast"], "is not lowercase words"),
        (["--kind", "gizmo", "x"], "'target', 'strategy', 'predictor', 'supernet'"),
        (["x"], "Missing option '--kind'"),
        (["--kind", "strategy", "random"], "strategy 'random' is registered already"),
        (["--kind", "target", "onnxruntime"], "target 'onnxruntime' is registered already"),
        (["--kind", "predictor", "example"], "a plugin named 'example' is installed already"),
    ],
)
def test_plugin_new_refuses_bad_input(tmp_path, monkeypatch, plugin_host, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    assert hwnas_cli("plugin", "new", *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir()), "nothing may be written on bad input"


def test_plugin_new_never_writes_into_a_folder_with_files(tmp_path, builtin_plugin_host, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    assert hwnas_cli("plugin", "new", "--kind", "predictor", "x", "--out", str(out)) == 2
    assert "taken exists and is not an empty folder" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    (out / "mine.txt").unlink()  # an empty folder is fine
    assert hwnas_cli("plugin", "new", "--kind", "predictor", "x", "--out", str(out)) == 0
    assert (out / "hwnas_x" / "__init__.py").is_file()


@pytest.fixture
def generated_search_plugins(tmp_path, monkeypatch):
    """The generated strategy and predictor, imported from their folders and registered."""
    host = PluginHost(autoload=False)
    modules = []
    for kind, root in generate(tmp_path, "strategy", "predictor").items():
        monkeypatch.syspath_prepend(str(root))
        modules.append(importlib.import_module(f"hwnas_{NAMES[kind].replace('-', '_')}"))
        host.register(modules[-1], name=NAMES[kind], package=root.name, version="0.1.0")
    registry.use_plugin_host(host)
    yield host
    registry.use_plugin_host(None)
    for module in modules:  # the next test imports its own freshly written copy
        sys.modules.pop(module.__name__)


def test_generated_strategy_and_predictor_pass_the_kit(generated_search_plugins):
    from hwnas.testing import check_predictor, check_strategy

    check_strategy(NAMES["strategy"])
    check_predictor(NAMES["predictor"])


def test_generated_strategy_searches_better_than_random(generated_search_plugins):
    """A real search: on a 5**10 space, its median hypervolume beats random sampling's."""
    space = hwnas.SearchSpace("toy", [hwnas.Gene(f"g{i}", (0, 1, 2, 3, 4)) for i in range(10)])
    weights = np.random.default_rng(42).random((2, 10))

    def evaluate(subnet):
        x = np.array([subnet[f"g{i}"] for i in range(10)], dtype=float)
        return {
            "accuracy": float(1 - np.exp(-(weights[0] @ np.sqrt(x)) / 4)),
            "latency": float(1 + weights[1] @ x**1.5 / 10),
        }

    largest = evaluate(space.largest())
    lower, upper = np.array([-largest["accuracy"], 1.0]), np.array([0.0, largest["latency"]])

    def median_hypervolume(strategy: str) -> float:
        volumes = []
        for seed in range(5):
            result = hwnas.search(
                space, evaluate, ("accuracy", "latency"), strategy=strategy, budget=80, seed=seed
            )
            F = [[-e.values["accuracy"], e.values["latency"]] for e in result.evaluations]
            volumes.append(hwnas.hypervolume(np.array(F), lower, upper))
        return float(np.median(volumes))

    ours, random = median_hypervolume(NAMES["strategy"]), median_hypervolume("random")
    assert ours > random + 0.02, (ours, random)


@pytest.mark.slow
def test_generated_packages_install_and_pass_their_own_tests(tmp_path):
    paths = generate(tmp_path / "packages", *KINDS)
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
        + ["--target", str(site), *map(str, paths.values())],
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr
    env = {"PYTHONPATH": str(site)}

    listed = run_hwnas("plugins", "--json", env=env, cwd=str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    for kind, name in NAMES.items():
        assert rows[name]["package"] == f"hwnas-{name}" and rows[name]["status"] == "ok"
        assert f"{kind}:{name}" in rows[name]["provides"]
    assert "loader:plain-onnx-session" in rows["plain-onnx"]["provides"]

    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--import-mode=importlib"]
        + [str(root / "tests") for root in paths.values()],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **env},
        timeout=600,
    )
    # a target plugin's test skips where its runtime is missing: here onnxruntime is installed
    assert tests.returncode == 0 and "skipped" not in tests.stdout, tests.stdout[-3000:]
    assert "5 passed" in tests.stdout, tests.stdout[-3000:]  # the supernet's two presets
