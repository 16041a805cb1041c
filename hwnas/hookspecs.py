"""Every hook hwnas calls, in one place; plugins implement them with ``hwnas.hookimpl``.

Hooks *find* things and hand them to a ``register`` callback, so the core can
check names and reject duplicates; the typed base classes *do* the work.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT_NAME = "hwnas"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -- hardware targets --------------------------------------------------------


@hookspec
def hwnas_register_targets(register: Callable[..., None]) -> None:
    """Register target kinds.

    Call ``register(target_class)`` once per :class:`hwnas.measurement.target.Target`
    subclass. The class's ``kind`` (e.g. ``"onnxruntime"``) is what a spec
    string starts with; registering a kind twice is an error naming both
    plugins. Every implementation is called; return values are ignored.
    """


@hookspec
def hwnas_register_target_presets(register: Callable[..., None]) -> None:
    """Register named target presets, like TVM's target tags.

    Call ``register(name, spec, description)``: ``name`` like ``"arm/rasp4b"``,
    ``spec`` a target spec string it stands for. Duplicate names are an error.
    Every implementation is called; return values are ignored.
    """


@hookspec
def hwnas_register_loaders(register: Callable[..., None]) -> None:
    """Register standalone loaders: the code an exported artifact's ``run.py`` runs it with.

    Call ``register(name, module)``: ``name`` is the loader name a target
    gives ``Target.artifact(..., loader=name)``; ``module`` is the dotted name
    of a single-file module that imports only the standard library, numpy and
    its runtime, and defines ``load(path, details, threads)`` returning a
    model with ``set_inputs(inputs)``, ``run()`` and ``outputs()`` (see
    docs/PLUGINS.md). Export copies the module's source into the artifact; the
    default ``Target.load`` runs the same code in the measurement worker.
    Duplicate names are an error. Every implementation is called.
    """


# -- search ------------------------------------------------------------------


@hookspec
def hwnas_register_strategies(register: Callable[..., None]) -> None:
    """Register search strategies.

    Call ``register(strategy_class)`` once per :class:`hwnas.search_core.strategy.Strategy`
    subclass; its ``name`` is what ``--strategy`` selects. Duplicate names
    are an error. Every implementation is called; return values are ignored.
    """


@hookspec
def hwnas_register_predictors(register: Callable[..., None]) -> None:
    """Register objective predictors (latency, accuracy, ...).

    Call ``register(predictor_class)`` once per
    :class:`hwnas.search_core.predictor.Predictor` subclass, keyed by its ``name``.
    Duplicate names are an error. Every implementation is called.
    """


# -- models ------------------------------------------------------------------


@hookspec
def hwnas_register_supernets(register: Callable[..., None]) -> None:
    """Register weight-sharing supernets.

    Call ``register(supernet_class)`` once per
    :class:`hwnas.model.supernet.Supernet` subclass, keyed by its ``name``
    (what ``hwnas search --supernet`` selects). Duplicate names are an error.
    Every implementation is called.
    """


REGISTER_HOOKS: dict[str, str] = {
    "hwnas_register_targets": "target",
    "hwnas_register_target_presets": "preset",
    "hwnas_register_loaders": "loader",
    "hwnas_register_strategies": "strategy",
    "hwnas_register_predictors": "predictor",
    "hwnas_register_supernets": "supernet",
}
"""Register hook name -> the kind of thing it registers (used in listings)."""

__all__ = ["PROJECT_NAME", "REGISTER_HOOKS", "hookimpl", "hookspec"] + [
    name for name in REGISTER_HOOKS
]
