"""The plugin system: built-ins, entry points, autoload switch, duplicates and broken plugins."""

from __future__ import annotations

import sys

import pytest
from plugin_fakes import (
    FakeStrategy,
    FakeTarget,
    MisspelledHook,
    RaisesInHook,
    RegistersFakeStrategy,
    RegistersFakeTarget,
    RegistersFakeTargetToo,
    RegistersNamelessTarget,
    RegistersNotAPredictor,
    write_entry_point_dist,
)

from hwnas import hookspecs, registry
from hwnas.errors import UnknownNameError
from hwnas.plugin_manager import DEFAULT_PLUGINS, PluginHost


def test_every_builtin_loads_under_its_dotted_name(builtin_plugin_host):
    for dotted in DEFAULT_PLUGINS:
        info = builtin_plugin_host.plugins[dotted]
        assert info.builtin and info.package == "hwnas"
        builtin_plugin_host.registrations("target")
        assert info.ok, f"{dotted}: {info.status}"


def test_builtins_provide_targets_through_the_same_hooks(builtin_plugin_host):
    kinds = registry.target_classes()
    assert {"torch", "onnxruntime", "tvm", "tvm-rpc"} <= set(kinds)
    reg = builtin_plugin_host.registrations("target")["onnxruntime"]
    assert reg.plugin.startswith("hwnas_targets.")


def test_example_package_is_found_through_its_entry_point(plugin_host):
    info = plugin_host.plugins["example"]
    assert info.package == "hwnas-example-plugin" and not info.builtin
    assert "example/ort-1thread" in registry.target_presets()
    assert ("preset", "example/ort-1thread") in info.provides


def test_autoload_switch_leaves_only_builtins(monkeypatch):
    monkeypatch.setenv("HWNAS_DISABLE_PLUGIN_AUTOLOAD", "1")
    host = PluginHost()
    assert "example" not in host.plugins
    assert all(info.builtin for info in host.plugins.values())


def test_fake_plugin_registers_and_unregisters(builtin_plugin_host):
    builtin_plugin_host.register(RegistersFakeStrategy(), name="fakes")
    assert registry.strategy_class("fake-strategy") is FakeStrategy
    builtin_plugin_host.unregister("fakes")
    with pytest.raises(UnknownNameError, match="fake-strategy"):
        registry.strategy_class("fake-strategy")


def test_duplicate_name_is_an_error_naming_both_plugins(builtin_plugin_host):
    builtin_plugin_host.register(RegistersFakeTarget(), name="first")
    builtin_plugin_host.register(RegistersFakeTargetToo(), name="second")
    kinds = registry.target_classes()
    assert kinds["fake"] is FakeTarget
    assert builtin_plugin_host.plugins["first"].ok
    error = builtin_plugin_host.plugins["second"].error
    assert error.startswith("DuplicateNameError: plugin 'second':") and "'first'" in error
    assert "already registered by plugin" in error


def test_builtin_kind_cannot_be_taken_over(builtin_plugin_host):
    class Hijack:
        @hookspecs.hookimpl
        def hwnas_register_targets(self, register):
            register(type("Hijacked", (FakeTarget,), {"kind": "onnxruntime"}))

    builtin_plugin_host.register(Hijack(), name="hijacker")
    assert registry.target_classes()["onnxruntime"].__module__ == "hwnas_targets.onnxruntime_target"
    error = builtin_plugin_host.plugins["hijacker"].error
    assert "onnxruntime" in error and "hwnas_targets.onnxruntime_target" in error


def test_plugin_raising_in_its_hook_is_isolated(builtin_plugin_host):
    builtin_plugin_host.register(RaisesInHook(), name="on-fire")
    builtin_plugin_host.register(RegistersFakeStrategy(), name="fine")
    assert "fake-strategy" in registry.strategy_classes()
    info = builtin_plugin_host.plugins["on-fire"]
    assert not info.ok and info.error == "RuntimeError: database of strategies is on fire"


def test_misspelled_hook_makes_the_plugin_broken(builtin_plugin_host):
    builtin_plugin_host.register(MisspelledHook(), name="typo")
    info = builtin_plugin_host.plugins["typo"]
    assert not info.ok and "hwnas_register_strategys" in info.error
    assert "fake-strategy" not in registry.strategy_classes()


def test_registered_class_of_the_wrong_base_is_reported(builtin_plugin_host):
    builtin_plugin_host.register(RegistersNotAPredictor(), name="wrong-base")
    assert "dict" not in registry.predictor_classes()
    error = builtin_plugin_host.plugins["wrong-base"].error
    assert "is not a subclass of hwnas.search_core.predictor.Predictor" in error


def test_registered_target_without_a_kind_is_reported(builtin_plugin_host):
    builtin_plugin_host.register(RegistersNamelessTarget(), name="nameless")
    registry.target_classes()
    assert "no string kind" in builtin_plugin_host.plugins["nameless"].error


def test_entry_point_that_fails_to_import_is_reported_by_name(tmp_path, monkeypatch):
    write_entry_point_dist(tmp_path, "hwnas-broken", "broken", "module_that_does_not_exist_42")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = PluginHost()
    info = host.plugins["broken"]
    assert info.package == "hwnas-broken" and info.version == "0.3"
    assert info.error == "ModuleNotFoundError: No module named 'module_that_does_not_exist_42'"
    assert host.plugins["example"].ok  # the others keep working
    assert "\n" not in info.status


def test_entry_point_raising_at_import_is_isolated(tmp_path, monkeypatch):
    (tmp_path / "explodes_on_import.py").write_text("raise SystemExit('plugin called exit()')\n")
    write_entry_point_dist(tmp_path, "hwnas-explodes", "explodes", "explodes_on_import")
    monkeypatch.syspath_prepend(str(tmp_path))
    host = PluginHost()
    assert host.plugins["explodes"].error == "SystemExit: plugin called exit()"
    sys.modules.pop("explodes_on_import", None)


def test_every_hook_is_documented_and_prefixed():
    for name in hookspecs.REGISTER_HOOKS:
        spec = getattr(hookspecs, name)
        assert name.startswith("hwnas_")
        assert spec.__doc__ and "register(" in spec.__doc__
