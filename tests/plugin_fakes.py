"""Fake plugins for tests: classes whose @hookimpl methods register fake targets and strategies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hwnas import hookimpl
from hwnas.measurement.target import Availability, Target
from hwnas.search_core.strategy import Strategy


class FakeTarget(Target):
    kind = "fake"
    description = "a target that exists only in tests"

    def available(self) -> Availability:
        return Availability.yes()

    def fingerprint(self) -> dict[str, Any]:
        return {"runtime": "fake-1.0"}

    def compile(self, ir: Any, workdir: Path) -> Any:
        raise AssertionError("not compiled in these tests")

    def load(self, artifact: Any) -> Any:
        raise AssertionError("not loaded in these tests")


class FakeStrategy(Strategy):
    name = "fake-strategy"

    def _ask(self, n: int) -> list:
        return self.random_subnets(n)


class RegistersFakeTarget:
    @hookimpl
    def hwnas_register_targets(self, register):
        register(FakeTarget)


class RegistersFakeTargetToo:
    """Registers the same target kind as RegistersFakeTarget: a duplicate."""

    @hookimpl
    def hwnas_register_targets(self, register):
        register(FakeTarget)


class RegistersFakeStrategy:
    @hookimpl
    def hwnas_register_strategies(self, register):
        register(FakeStrategy)


class RaisesInHook:
    @hookimpl
    def hwnas_register_strategies(self, register):
        raise RuntimeError("database of strategies is on fire")


class MisspelledHook:
    @hookimpl
    def hwnas_register_strategys(self, register):  # sic: not a known hook
        register(FakeStrategy)


class RegistersNotAPredictor:
    @hookimpl
    def hwnas_register_predictors(self, register):
        register(dict)


class RegistersNamelessTarget:
    @hookimpl
    def hwnas_register_targets(self, register):
        register(type("Nameless", (FakeTarget,), {"kind": ""}))


def write_entry_point_dist(root: Path, dist: str, entry_name: str, target: str) -> Path:
    """Make a minimal installed distribution under ``root`` whose ``hwnas`` entry point is ``target``."""
    info = root / f"{dist.replace('-', '_')}-0.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text(f"[hwnas]\n{entry_name} = {target}\n")
    return root
