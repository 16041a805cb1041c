"""docs/PLUGINS.md is the contract: every hook and base-class method is documented and tested, and its example works.

As datasette does: a hook without a ``test_hook_<name>`` test, or a method
without a docstring, a PLUGINS.md mention or a caller in the kit or the tests, fails here.
The example target is the ``hwnas plugin new`` template, which tests/test_plugin_template.py
installs and runs through the kit.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest

import hwnas
from hwnas import hookspecs

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "PLUGINS.md").read_text()
BASES = (hwnas.Target, hwnas.Runner, hwnas.Strategy, hwnas.Predictor, hwnas.Supernet)
#: Underscore methods that are override points, hence part of the contract.
OVERRIDES = {"_ask", "_tell", "_state", "_load_state", "_fit", "_predict"}
HOOKS = sorted(hookspecs.REGISTER_HOOKS)
#: Methods the base class calls on the plugin's behalf: tested when what calls them is.
CALLED_THROUGH = {
    "_ask": "ask",
    "_tell": "tell",
    "_state": "state_dict",
    "_load_state": "load_state_dict",
    "_fit": "fit",
    "_predict": "predict",
    "build_space": "space",
    "validate_settings": "configure",
    "preset_settings": "configure",
}


def contract_methods(cls: type) -> list[str]:
    names = []
    for name, value in vars(cls).items():
        if name.startswith("__") or (name.startswith("_") and name not in OVERRIDES):
            continue
        value = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
        value = value.fget if isinstance(value, property) else getattr(value, "func", value)
        if callable(value) and not isinstance(value, type):
            names.append(name)
    return names


METHODS = [(cls, name) for cls in BASES for name in contract_methods(cls)]


def called_names() -> set[str]:
    """Attribute names used anywhere in the kit (hwnas/testing) and the tests."""
    names: set[str] = set()
    for path in [*(ROOT / "hwnas" / "testing").rglob("*.py"), *(ROOT / "tests").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
    return names


def defined_test_names() -> set[str]:
    found = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        found |= set(re.findall(r"^def (test_\w+)", path.read_text(), re.M))
    return found


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_and_tested(hook):
    assert inspect.getdoc(getattr(hookspecs, hook)), f"{hook} has no docstring"
    assert f"`{hook}`" in DOC, f"docs/PLUGINS.md does not document {hook}"
    assert any(t.startswith(f"test_hook_{hook}") for t in defined_test_names()), (
        f"no test named test_hook_{hook}... in tests/"
    )


@pytest.mark.parametrize(("cls", "name"), METHODS, ids=[f"{c.__name__}.{n}" for c, n in METHODS])
def test_every_base_class_method_is_documented_and_tested(cls, name):
    value = vars(cls)[name]
    value = value.__func__ if isinstance(value, (classmethod, staticmethod)) else value
    value = value.fget if isinstance(value, property) else getattr(value, "func", value)
    assert inspect.getdoc(value), f"{cls.__name__}.{name} has no docstring"
    assert f"{cls.__name__}.{name}" in DOC, (
        f"docs/PLUGINS.md does not mention {cls.__name__}.{name}"
    )
    assert CALLED_THROUGH.get(name, name) in called_names(), (
        f"neither the kit nor a test uses {cls.__name__}.{name}"
    )


def test_every_facade_name_is_in_the_docs():
    missing = [n for n in hwnas.__all__ if f"`{n}`" not in DOC]
    assert not missing, f"docs/PLUGINS.md does not list: {missing}"


def doc_files() -> dict[str, str]:
    """The code blocks of PLUGINS.md marked ``file=PATH``, by path."""
    return {
        match["path"]: match["body"]
        for match in re.finditer(r"```\w+ file=(?P<path>\S+)\n(?P<body>.*?)```", DOC, re.S)
    }


def test_the_documented_target_is_under_100_lines():
    files = doc_files()
    module = {path: body for path, body in files.items() if path.startswith("hwnas_plain_onnx/")}
    assert set(module) == {"hwnas_plain_onnx/__init__.py", "hwnas_plain_onnx/session.py"}
    assert sum(len(body.splitlines()) for body in module.values()) < 100


def test_the_documented_target_is_what_plugin_new_writes():
    """One source: the doc's files are the target template's (test_plugin_template runs it)."""
    from hwnas.cli.plugin_cmd import render_plugin

    written = render_plugin("target", "plain-onnx")
    for path, body in doc_files().items():
        if path == "pyproject.toml":  # an excerpt
            assert body in written[path], f"PLUGINS.md's {path} is not in the template's"
        else:
            assert body == written[path], f"PLUGINS.md's {path} differs from the template's"
