"""Every registered plugin passes the conformance kit (hwnas.testing): targets, strategies, predictors, supernets.

Parametrised over the registry (built-ins and installed third-party plugins);
a target that cannot run here is skipped with its reason.
"""

from __future__ import annotations

import pytest

from hwnas import registry
from hwnas.measurement.target import TargetSpec
from hwnas.plugin_manager import PluginHost
from hwnas.testing import check_predictor, check_strategy, check_supernet
from hwnas.testing.search import KIT_KERNEL_COSTS

_HOST = PluginHost()  # what is installed: built-ins, the example plugins
registry.use_plugin_host(_HOST)
try:
    TARGET_SPECS = [s for cls in registry.target_classes().values() for s in cls.listed_specs()]
    STRATEGIES = sorted(registry.strategy_classes())
    PREDICTORS = sorted(registry.predictor_classes())
    SUPERNETS = sorted(registry.supernet_classes())
finally:
    registry.use_plugin_host(None)


def _target_param(spec: str) -> object:
    device = TargetSpec.parse(spec).device
    # each check compiles and times three models (TVM: a minute); onnxruntime:cpu stays in the fast suite
    marks = [] if spec == "onnxruntime:cpu" else [pytest.mark.slow]
    if device == "cuda":
        marks.append(pytest.mark.gpu)
    return pytest.param(spec, marks=marks, id=spec)


@pytest.mark.parametrize("spec", [_target_param(s) for s in TARGET_SPECS])
def test_registered_target_conforms(hwnas_check_target, spec):
    report = hwnas_check_target(spec)
    assert [m.model for m in report.models] == ["conv0", "two-io", "attention"]


@pytest.mark.parametrize("name", STRATEGIES)
def test_registered_strategy_conforms(hwnas_plugin_host, name):
    check_strategy(name)


@pytest.mark.parametrize("name", PREDICTORS)
def test_registered_predictor_conforms(hwnas_plugin_host, name):
    cls = registry.predictor_class(name)
    make = None
    if cls.input_kind == "kernels":  # a lookup table measures each kernel: here, a biased oracle

        def make(settings):
            return cls(settings, measure_kernel=lambda key: 0.8 * KIT_KERNEL_COSTS[key])

    check_predictor(name, make=make)


@pytest.mark.slow
@pytest.mark.parametrize("name", SUPERNETS)
def test_registered_supernet_conforms(hwnas_plugin_host, name):
    check_supernet(name)
