"""Each hook, through a fake plugin registered the way a third-party one is; the Target helpers; the kit failing on broken plugins.

The ``test_hook_<name>`` tests are what tests/test_plugin_docs.py looks for.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hwnas import hookimpl, registry
from hwnas.errors import ConfigError
from hwnas.measurement.resolve import resolve_target
from hwnas.measurement.standalone import loader_module, loader_source
from hwnas.testing import ConformanceError, check_predictor, check_strategy, check_target
from hwnas_plugins.predictors.sklearn_predictors import RidgePredictor
from hwnas_plugins.strategies.random_search import RandomStrategy
from hwnas_targets.onnxruntime_target import OnnxRuntimeTarget


class RegistersEachKind:
    @hookimpl
    def hwnas_register_targets(self, register):
        register(InputBlindTarget)
        register(HandleTarget)

    @hookimpl
    def hwnas_register_target_presets(self, register):
        register("kit/blind", "kit-blind:cpu?threads=1", "a target that ignores new inputs")

    @hookimpl
    def hwnas_register_loaders(self, register):
        register("kit-loader", "hwnas_targets.onnxruntime_session")

    @hookimpl
    def hwnas_register_strategies(self, register):
        register(RepeatingStrategy)

    @hookimpl
    def hwnas_register_predictors(self, register):
        register(ConstantPredictor)

    @hookimpl
    def hwnas_register_supernets(self, register):
        from hwnas_plugins.supernets.resnet import ElasticResNetSupernet

        register(type("KitResNet", (ElasticResNetSupernet,), {"name": "kit-resnet"}))


class InputBlindTarget(OnnxRuntimeTarget):
    """onnxruntime, but its runner feeds the inputs saved at compile time, whatever it is given."""

    kind = "kit-blind"

    @classmethod
    def listed_specs(cls):
        return (f"{cls.kind}:cpu",)

    def compile(self, ir, workdir):
        np.savez(workdir / "saved.npz", **ir.input_arrays())
        return super().compile(ir, workdir)

    def load(self, artifact, threads):
        runner = super().load(artifact, threads)
        saved = np.load(Path(artifact.root) / "saved.npz")
        feed = runner.set_inputs
        runner.set_inputs = lambda inputs: feed([saved[name] for name in saved.files])
        return runner


class HandleTarget(OnnxRuntimeTarget):
    """Keeps an open file (a stand-in for ov.Core()) on the Target itself."""

    kind = "kit-handle"

    @classmethod
    def listed_specs(cls):
        return (f"{cls.kind}:cpu",)

    def __init__(self, spec):
        super().__init__(spec)
        self.handle = open(__file__)  # noqa: SIM115 - the point is an unpicklable attribute


class RepeatingStrategy(RandomStrategy):
    """Proposes the first subnets again and again."""

    name = "kit-repeating"

    def _ask(self, n):
        if self.history:
            return [e.subnet for e in self.history[:n]]
        return super()._ask(n)


class ConstantPredictor(RidgePredictor):
    name = "kit-constant"

    def _predict(self, X):
        return super()._predict(X) * 0 + 1.0


@pytest.fixture
def kit_host(builtin_plugin_host):
    builtin_plugin_host.register(RegistersEachKind(), name="kit-fakes")
    return builtin_plugin_host


def test_hook_hwnas_register_targets(kit_host):
    assert registry.target_classes()["kit-blind"] is InputBlindTarget
    assert registry.origin("target", "kit-blind").plugin == "kit-fakes"


def test_hook_hwnas_register_target_presets(kit_host):
    target = resolve_target("kit/blind")
    assert (
        target.kind == "kit-blind" and target.label == "kit/blind" and target.pinned_threads() == 1
    )


def test_hook_hwnas_register_loaders(kit_host):
    assert loader_module("kit-loader") == "hwnas_targets.onnxruntime_session"
    assert loader_source("hwnas_targets.onnxruntime_session").name == "onnxruntime_session.py"
    assert loader_module("onnxruntime-session") == "hwnas_targets.onnxruntime_session"
    with pytest.raises(ConfigError, match="no standalone loader 'nope'"):
        loader_module("nope")
    with pytest.raises(ConfigError, match="is a package"):
        loader_source("hwnas_targets")


def test_hook_hwnas_register_loaders_refuses_a_registration_without_module(builtin_plugin_host):
    class Broken:
        @hookimpl
        def hwnas_register_loaders(self, register):
            register("no-module")

    builtin_plugin_host.register(Broken(), name="broken-loader")
    assert "no-module" not in registry.standalone_loaders()
    assert "dotted name of its module" in builtin_plugin_host.plugins["broken-loader"].error


def test_hook_hwnas_register_strategies(kit_host):
    assert registry.strategy_class("kit-repeating") is RepeatingStrategy


def test_hook_hwnas_register_predictors(kit_host):
    assert registry.predictor_class("kit-constant") is ConstantPredictor


def test_hook_hwnas_register_supernets(kit_host):
    assert registry.supernet_class("kit-resnet").name == "kit-resnet"


def test_target_helpers_check_spec_options(builtin_plugin_host):
    target = resolve_target("onnxruntime:cpu?threads=2")
    assert target.int_option("threads") == 2 and target.pinned_threads() == 2
    assert target.device_from_spec(("cpu",), "cpu") == "cpu"
    with pytest.raises(ConfigError, match="unknown widget 'cpu'"):
        target.device_from_spec(("gpu",), "gpu", what="widget")
    with pytest.raises(ConfigError, match="must be >= 5"):
        target.int_option("threads", minimum=5)
    assert "threads=2" in target.short_fingerprint()
    assert target.hardware()["device"] == "cpu" and target.hardware()["name"]


def test_kit_fails_a_target_that_ignores_new_inputs(kit_host):
    with pytest.raises(ConformanceError, match="second set of inputs"):
        check_target("kit-blind:cpu?threads=1", deployable=False)


def test_kit_fails_a_target_that_does_not_pickle(kit_host):
    with pytest.raises(ConformanceError, match="does not pickle"):
        check_target("kit-handle:cpu")


def test_kit_fails_a_strategy_that_repeats_itself(kit_host):
    with pytest.raises(ConformanceError, match="already told"):
        check_strategy("kit-repeating")


def test_kit_fails_a_predictor_that_learns_nothing(kit_host):
    with pytest.raises(ConformanceError, match="ranks an easy held-out function poorly"):
        check_predictor("kit-constant")


def test_kit_fails_a_plugin_without_description(kit_host):
    silent = type("Silent", (RidgePredictor,), {"name": "kit-silent", "description": ""})
    with pytest.raises(ConformanceError, match="no description"):
        check_predictor(silent)


def test_targets_say_which_precisions_they_run(builtin_plugin_host):
    from hwnas.measurement.resolve import resolve_target

    assert resolve_target("onnxruntime:cpu").supports_precision("int8")
    refused = resolve_target("torch:cpu").supports_precision("int8")
    assert not refused and "int8 is not supported on target torch:cpu" in refused.reason
    assert resolve_target("torch:cpu").supports_precision("fp32")


def test_supernet_static_input_has_the_exported_shape(builtin_plugin_host):
    import torch

    from hwnas import registry

    supernet = registry.supernet_class("ofa-mbv3").configure("tiny")
    subnet = supernet.space.smallest()
    batch = torch.zeros(3, 1, 40, 40)
    shaped = supernet.static_input(batch, subnet)
    assert tuple(shaped.shape) == (3, *supernet.input_spec(subnet, 1).shape[1:])


def test_supernets_that_wrap_no_pretrained_model_refuse_it(builtin_plugin_host):
    from hwnas import ConfigError, registry

    with pytest.raises(ConfigError, match="cannot be built from a pretrained model"):
        registry.supernet_class("ofa-mbv3").from_pretrained("anything")
