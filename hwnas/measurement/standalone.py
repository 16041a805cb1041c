"""Standalone loaders: the numpy-and-runtime-only code that runs a compiled artifact.

A loader module (registered through ``hwnas_register_loaders``) defines
``load(path, details, threads)``; the measurement worker wraps what it returns
in a :class:`StandaloneRunner`, and exported artifacts run the same file as
their ``run.py``'s loader. Copying it into an artifact is :mod:`hwnas.deploy`'s job.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hwnas import registry
from hwnas.errors import ConfigError
from hwnas.measurement.runner import Runner

if TYPE_CHECKING:
    import numpy as np

    from hwnas.measurement.artifact import Artifact

#: What a standalone model must have; ``close``, ``device_info``, ``peak_memory_bytes``,
#: ``time_native`` and ``native_timer`` are optional, as on :class:`Runner`.
MODEL_METHODS = ("set_inputs", "run", "outputs")


class StandaloneRunner(Runner):
    """A :class:`Runner` over a standalone model (what a loader module's ``load`` returns).

    The model needs ``set_inputs``, ``run`` and ``outputs``; any of the
    Runner's optional methods it has are used, the others keep their defaults.
    """

    def __init__(self, model: Any) -> None:
        missing = [m for m in MODEL_METHODS if not callable(getattr(model, m, None))]
        if missing:
            raise ConfigError(
                f"standalone model {type(model).__qualname__} lacks {', '.join(missing)}",
                hint="a loader's load() must return an object with set_inputs(), run() and outputs()",
            )
        self.model = model
        self.native_timer = str(getattr(model, "native_timer", "") or "")  # type: ignore[misc]

    def set_inputs(self, inputs: Sequence[np.ndarray]) -> None:
        self.model.set_inputs(list(inputs))

    def run(self) -> None:
        self.model.run()

    def outputs(self) -> list[np.ndarray]:
        return list(self.model.outputs())

    def time_native(self, repeat: int, min_repeat_ms: float) -> list[float] | None:
        timer = getattr(self.model, "time_native", None)
        return None if timer is None else timer(repeat, min_repeat_ms)

    def peak_memory_bytes(self) -> int | None:
        peak = getattr(self.model, "peak_memory_bytes", None)
        return None if peak is None else peak()

    def device_info(self) -> dict[str, Any]:
        info = getattr(self.model, "device_info", None)
        return {} if info is None else dict(info())

    def close(self) -> None:
        close = getattr(self.model, "close", None)
        if close is not None:
            close()


def loader_module(loader: str) -> str:
    """The dotted module registered for standalone loader ``loader``; a :class:`ConfigError` if none is."""
    found = registry.standalone_loaders().get(loader)
    if found is None:
        known = ", ".join(sorted(registry.standalone_loaders())) or "none"
        raise ConfigError(
            f"no standalone loader {loader!r} is registered",
            hint=f"register one with the hwnas_register_loaders hook (see docs/PLUGINS.md), "
            f"or override Target.load; registered loaders: {known}",
        )
    return found.module


def loader_source(module: str) -> Path:
    """The one source file of loader ``module`` (what export copies into an artifact), found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    origin = spec.origin if spec is not None else None
    if origin is None or not origin.endswith(".py"):
        raise ConfigError(
            f"standalone loader module {module!r} is not a Python source file here",
            hint="a loader is one .py module (not a package) importable by its dotted name",
        )
    if Path(origin).name == "__init__.py":
        raise ConfigError(
            f"standalone loader module {module!r} is a package",
            hint="make the loader one module file: export copies that single file into the artifact",
        )
    return Path(origin)


def import_loader(module: str) -> ModuleType:
    """Import loader ``module`` and check it defines ``load``."""
    imported = importlib.import_module(module)
    if not callable(getattr(imported, "load", None)):
        raise ConfigError(
            f"standalone loader module {module!r} defines no load(path, details, threads)"
        )
    return imported


def load_standalone(artifact: Artifact, threads: int | None) -> StandaloneRunner:
    """Load ``artifact`` with its standalone loader; what :meth:`Target.load` does by default."""
    module = import_loader(artifact.loader_module or loader_module(artifact.loader))
    return StandaloneRunner(module.load(artifact.path(), dict(artifact.details), threads))
