"""Typed read access to what plugins registered: targets, presets, loaders, strategies, predictors, supernets.

The rest of hwnas reads plugins only through these helpers, never through
``pm.hook``; loading plugins is :mod:`hwnas.plugin_manager`'s job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hwnas.errors import UnknownNameError
from hwnas.plugin_manager import PluginHost

if TYPE_CHECKING:
    from hwnas.measurement.target import Target
    from hwnas.model.supernet import Supernet
    from hwnas.search_core.predictor import Predictor
    from hwnas.search_core.strategy import Strategy


@dataclass(frozen=True)
class Preset:
    """A named target preset standing for a spec string (like a TVM target tag)."""

    name: str
    spec: str
    description: str = ""
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class StandaloneLoader:
    """A registered standalone loader: the module an exported artifact's ``run.py`` loads it with."""

    name: str
    module: str
    plugin: str = field(default="", compare=False)


@dataclass(frozen=True)
class PluginOrigin:
    """Which installed distribution registered something, for manifests and install hints."""

    plugin: str
    package: str
    version: str
    builtin: bool


_host: PluginHost | None = None


def plugin_host() -> PluginHost:
    """The process's plugin host, created (and plugins loaded) on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def use_plugin_host(host: PluginHost | None) -> None:
    """Replace the process's plugin host (tests use a fresh one each); ``None`` resets it."""
    global _host
    _host = host


def _by_name(kind: str) -> dict[str, Any]:
    return {name: reg.obj for name, reg in plugin_host().registrations(kind).items()}


def _lookup(kind: str, name: str, what: str, command: str) -> Any:
    found = _by_name(kind)
    if name not in found:
        raise UnknownNameError(
            f"unknown {what} {name!r}",
            hint=f"known: {', '.join(sorted(found)) or 'none'} (see `hwnas {command}`)",
        )
    return found[name]


def target_classes() -> dict[str, type[Target]]:
    return _by_name("target")


def target_presets() -> dict[str, Preset]:
    presets = {}
    for name, reg in plugin_host().registrations("preset").items():
        spec, *rest = reg.extra
        presets[name] = Preset(
            name=name, spec=spec, description=rest[0] if rest else "", plugin=reg.plugin
        )
    return presets


def standalone_loaders() -> dict[str, StandaloneLoader]:
    """Every registered standalone loader, by name (see ``hwnas_register_loaders``)."""
    return {
        name: StandaloneLoader(name=name, module=reg.extra[0], plugin=reg.plugin)
        for name, reg in plugin_host().registrations("loader").items()
    }


def origin(kind: str, name: str) -> PluginOrigin | None:
    """The plugin (and its distribution) that registered ``kind`` ``name``, e.g. ``("target", "openvino")``."""
    host = plugin_host()
    reg = host.registrations(kind).get(name)
    if reg is None:
        return None
    info = host.plugins.get(reg.plugin)
    if info is None:
        return PluginOrigin(reg.plugin, "?", "?", False)
    return PluginOrigin(reg.plugin, info.package, info.version, info.builtin)


def strategy_classes() -> dict[str, type[Strategy]]:
    return _by_name("strategy")


def strategy_class(name: str) -> type[Strategy]:
    return _lookup("strategy", name, "search strategy", "plugins")


def predictor_classes() -> dict[str, type[Predictor]]:
    return _by_name("predictor")


def predictor_class(name: str) -> type[Predictor]:
    return _lookup("predictor", name, "predictor", "plugins")


def supernet_classes() -> dict[str, type[Supernet]]:
    return _by_name("supernet")


def supernet_class(name: str) -> type[Supernet]:
    return _lookup("supernet", name, "supernet", "plugins")


def plugin_of(kind: str, name: str) -> str | None:
    """The plugin that registered ``name`` as a ``kind`` (``"strategy"``, ``"target"``, ...), if any."""
    registration = plugin_host().registrations(kind).get(name)
    return registration.plugin if registration is not None else None
