"""Loads plugins (built-ins first, then the ``hwnas`` entry points) and isolates broken ones.

Reading what plugins registered goes through :mod:`hwnas.registry`; this
module only loads plugins, calls their register hooks, and records their status.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from hwnas import hookspecs
from hwnas.errors import DuplicateNameError, PluginError

ENTRY_POINT_GROUP = "hwnas"
DISABLE_AUTOLOAD_ENV = "HWNAS_DISABLE_PLUGIN_AUTOLOAD"

# Built-ins are plugins like any other, registered by full dotted module name.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "hwnas_targets.torch_target",
    "hwnas_targets.onnxruntime_target",
    "hwnas_targets.tvm_target",
    "hwnas_targets.tvm_rpc_target",
    "hwnas_targets.presets",
    "hwnas_plugins.strategies.random_search",
    "hwnas_plugins.strategies.nsga2",
    "hwnas_plugins.strategies.evolution",
    "hwnas_plugins.strategies.linas",
    "hwnas_plugins.predictors.sklearn_predictors",
    "hwnas_plugins.predictors.kernel_lut",
    "hwnas_plugins.predictors.linear_predictors",
    "hwnas_plugins.supernets.mobilenet_v3",
    "hwnas_plugins.supernets.resnet",
    "hwnas_plugins.supernets.transformer",
    "hwnas_plugins.supernets.bert",
    "hwnas_plugins.supernets.cnn",
)


@dataclass
class PluginInfo:
    """One loaded (or failed) plugin, as ``hwnas plugins`` shows it."""

    name: str
    package: str
    version: str
    builtin: bool
    error: str | None = None
    provides: list[tuple[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def status(self) -> str:
        return "ok" if self.ok else f"broken: {self.error}"


@dataclass(frozen=True)
class Registration:
    """One registered thing: what it is, its name, the object, and who registered it."""

    kind: str
    name: str
    obj: Any
    plugin: str
    extra: tuple[Any, ...] = ()


class PluginHost:
    """A pluggy manager plus the registry its plugins filled; one per process, fresh per test."""

    def __init__(self, *, builtins: Iterable[str] = DEFAULT_PLUGINS, autoload: bool | None = None):
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self._registrations: dict[str, dict[str, Registration]] | None = None
        hwnas_version = _distribution_version("hwnas")
        for dotted in builtins:
            self._load_module(dotted, package="hwnas", version=hwnas_version, builtin=True)
        if autoload is None:
            autoload = os.environ.get(DISABLE_AUTOLOAD_ENV, "") not in ("1", "true", "yes")
        if autoload:
            self.load_entry_points()

    # -- loading -------------------------------------------------------------

    def load_entry_points(self) -> None:
        """Load every ``hwnas`` entry point; a failing one is recorded as broken."""
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist
            package = dist.metadata["Name"] if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            if ep.name in self.plugins:
                continue
            try:
                plugin = ep.load()
            except BaseException as exc:  # a plugin must never take the process down
                self._record_broken(ep.name, package, version, exc)
                continue
            self.register(plugin, name=ep.name, package=package, version=version)

    def _load_module(self, dotted: str, *, package: str, version: str, builtin: bool) -> None:
        try:
            module = importlib.import_module(dotted)
        except BaseException as exc:
            self._record_broken(dotted, package, version, exc, builtin=builtin)
            return
        self.register(module, name=dotted, package=package, version=version, builtin=builtin)

    def register(
        self,
        plugin: object,
        *,
        name: str | None = None,
        package: str = "?",
        version: str = "?",
        builtin: bool = False,
    ) -> str:
        """Register a plugin object (module or instance); returns its name.

        A misspelled ``hwnas_*`` hook makes the plugin broken rather than
        silently never called.
        """
        name = name or _plugin_name(plugin)
        info = PluginInfo(name=name, package=package, version=version, builtin=builtin)
        self.plugins[name] = info
        try:
            self.pm.register(plugin, name=name)
        except BaseException as exc:
            info.error = _one_line(exc)
            return name
        unknown = [h for h in _hook_names(plugin) if h not in hookspecs.REGISTER_HOOKS]
        if unknown:
            self.pm.unregister(name=name)
            info.error = f"unknown hook(s) {', '.join(unknown)}; known: {', '.join(hookspecs.REGISTER_HOOKS)}"
        self._registrations = None
        return name

    def unregister(self, name: str) -> None:
        if self.pm.get_plugin(name) is not None:
            self.pm.unregister(name=name)
        self.plugins.pop(name, None)
        self._registrations = None

    def _record_broken(
        self, name: str, package: str, version: str, exc: BaseException, builtin: bool = False
    ) -> None:
        self.plugins[name] = PluginInfo(
            name=name, package=package, version=version, builtin=builtin, error=_one_line(exc)
        )

    # -- registrations -------------------------------------------------------

    def registrations(self, kind: str) -> dict[str, Registration]:
        """Everything of one kind (``target``, ``strategy``, ...) registered, by name."""
        if self._registrations is None:
            self._registrations = self._collect()
        return self._registrations.get(kind, {})

    def _collect(self) -> dict[str, dict[str, Registration]]:
        found: dict[str, dict[str, Registration]] = {
            k: {} for k in hookspecs.REGISTER_HOOKS.values()
        }
        for info in self.plugins.values():
            info.provides = []
        for hook_name, kind in hookspecs.REGISTER_HOOKS.items():
            hook = getattr(self.pm.hook, hook_name)
            # Each implementation is called on its own, in registration order
            # (built-ins first, so a third-party plugin cannot take over a
            # built-in name), so one plugin that raises is reported by name
            # and the others still register.
            for impl in hook.get_hookimpls():
                plugin_name = impl.plugin_name
                info = self.plugins.get(plugin_name)
                if info is None or not info.ok:
                    continue
                staged: list[Registration] = []
                register = _register_callback(kind, plugin_name, staged)
                try:
                    impl.function(register=register)
                    for reg in staged:
                        previous = found[kind].get(reg.name)
                        if previous is not None:
                            raise DuplicateNameError(
                                plugin_name,
                                f"{kind} {reg.name!r} is already registered by plugin "
                                f"{previous.plugin!r}",
                                hint="rename one of them, or uninstall one of the two plugins",
                            )
                except BaseException as exc:
                    info.error = _one_line(exc)
                    continue
                for reg in staged:
                    found[kind][reg.name] = reg
                    info.provides.append((kind, reg.name))
        return found


# kind -> the base class every registered class of that kind must subclass
BASE_CLASSES: dict[str, str] = {
    "target": "hwnas.measurement.target:Target",
    "strategy": "hwnas.search_core.strategy:Strategy",
    "predictor": "hwnas.search_core.predictor:Predictor",
    "supernet": "hwnas.model.supernet:Supernet",
}


def _base_class(kind: str) -> type:
    module, _, attr = BASE_CLASSES[kind].partition(":")
    return getattr(importlib.import_module(module), attr)


def _register_callback(
    kind: str, plugin_name: str, staged: list[Registration]
) -> Callable[..., None]:
    def register(obj: Any, *extra: Any) -> None:
        if kind == "preset":
            name = str(obj)
            if len(extra) < 1 or not isinstance(extra[0], str):
                raise PluginError(
                    plugin_name,
                    f"preset {name!r} needs a spec string: register(name, spec, description)",
                )
        elif kind == "loader":
            name = str(obj)
            if len(extra) != 1 or not isinstance(extra[0], str) or not extra[0]:
                raise PluginError(
                    plugin_name,
                    f"loader {name!r} needs the dotted name of its module: register(name, 'package.module')",
                )
        else:
            base = _base_class(kind)
            if not (isinstance(obj, type) and issubclass(obj, base)):
                raise PluginError(
                    plugin_name,
                    f"registered {kind} {obj!r} is not a subclass of {base.__module__}.{base.__qualname__}",
                )
            name = getattr(obj, "kind" if kind == "target" else "name", None)
            if not isinstance(name, str) or not name:
                raise PluginError(
                    plugin_name,
                    f"registered {kind} {obj!r} has no string "
                    f"{'kind' if kind == 'target' else 'name'} attribute",
                )
        if any(r.name == name for r in staged):
            raise DuplicateNameError(plugin_name, f"registers {kind} {name!r} twice")
        staged.append(Registration(kind=kind, name=name, obj=obj, plugin=plugin_name, extra=extra))

    return register


def _hook_names(plugin: object) -> list[str]:
    names = []
    for attr in dir(plugin):
        if not attr.startswith("hwnas_"):
            continue
        value = getattr(plugin, attr, None)
        if callable(value) and hasattr(value, f"{hookspecs.PROJECT_NAME}_impl"):
            names.append(attr)
    return names


def _plugin_name(plugin: object) -> str:
    if isinstance(plugin, types.ModuleType):
        return plugin.__name__
    return f"{type(plugin).__module__}.{type(plugin).__qualname__}"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _distribution_version(name: str) -> str:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return "?"
