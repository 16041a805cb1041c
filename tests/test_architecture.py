"""The layout rules of docs/ARCHITECTURE.md, checked on the source: no import circles, imports only
against the stage order, plugins only through the ``hwnas`` facade, and a facade that resolves."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import hwnas

ROOT = Path(__file__).resolve().parents[1]
#: Stage packages in pipeline order; a module may import its own stage and earlier ones.
STAGES = ("model", "ir", "measurement", "search_core", "deploy", "testing", "cli")
#: Modules outside the pipeline: the program's entry point may import the CLI.
ENTRY_POINTS = {"hwnas.__main__"}


def module_name(path: Path, root: Path, package: str) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path, module: str) -> list[tuple[str, int]]:
    """Absolute names ``module`` imports at run time (in functions too), skipping ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(n) for n in ast.walk(node))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            found.append((base, node.lineno))
            found += [(f"{base}.{alias.name}", node.lineno) for alias in node.names]
    return found


def core_graph() -> dict[str, set[str]]:
    modules = {module_name(p, ROOT / "hwnas", "hwnas"): p for p in (ROOT / "hwnas").rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for name, _ in runtime_imports(path, module):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if (
                name
                and name != module
                and not (path.name == "__init__.py" and name.startswith(module + "."))
            ):
                graph[module].add(name)
    return graph


def stage_of(module: str) -> int:
    parts = module.split(".")
    return STAGES.index(parts[1]) + 1 if len(parts) > 1 and parts[1] in STAGES else 0


def test_no_import_circles_in_the_core():
    graph = core_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_imports_follow_the_stage_order():
    against = [
        f"{module} ({STAGES[stage_of(module) - 1] if stage_of(module) else 'foundation'}) imports {target}"
        for module, targets in core_graph().items()
        if module not in ENTRY_POINTS
        for target in targets
        if stage_of(target) > stage_of(module)
    ]
    assert not against, (
        "imports against model -> ir -> measurement -> search_core -> deploy -> testing -> cli:\n"
        + "\n".join(against)
    )


@pytest.mark.parametrize("folder", ["targets", "plugins", "examples"])
def test_plugins_import_hwnas_only_through_the_facade(folder):
    offending = []
    for path in (ROOT / folder).rglob("*.py"):
        for name, line in runtime_imports(path, "plugin"):
            if name.startswith("hwnas.") and name.count(".") >= 1 and not name.startswith("hwnas_"):
                if name.split(".")[1] not in hwnas.__all__:
                    offending.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert not offending, "plugins must import from `hwnas` only:\n" + "\n".join(offending)


def test_every_facade_name_resolves_to_where_it_is_declared():
    for name in hwnas.__all__:
        assert getattr(hwnas, name) is not None, name
    source = (ROOT / "hwnas" / "__init__.py").read_text()
    tree = ast.parse(source)
    declared = {
        alias.asname or alias.name: node.module
        for block in tree.body
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in block.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    lazy = hwnas._LAZY
    assert set(declared) == set(lazy), (
        "the TYPE_CHECKING imports and _LAZY must list the same names"
    )
    for name, module in lazy.items():
        assert getattr(importlib.import_module(module), name) is getattr(hwnas, name)
