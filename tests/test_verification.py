"""Checks that can fail: two inputs, outputs that carry signal, probe weights for untrained models,
and wrong lowerings caught through the real measurement path (emitter -> onnxruntime -> worker)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from broken_lowerings import FAULTS, RegistersBrokenLowering
from measurement_fakes import RegistersMeasurementFakes
from torch import nn

from hwnas.errors import MeasurementError
from hwnas.ir import GraphIR, onnx_emitter
from hwnas.measurement.measurer import Measurer
from hwnas.measurement.probe import probe_ir
from hwnas.measurement.protocol import MeasurementProtocol
from hwnas.measurement.verification import (
    LEAST_SIGNAL_MARGIN,
    SIGNAL_MARGIN,
    compare_outputs,
    make_check,
    other_inputs,
    signal,
)
from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3

FAST = MeasurementProtocol(warmup=1, repeats=3, min_repeat_ms=1.0, timeout_s=120.0, max_remeasure=0)
ORT = "onnxruntime:cpu?threads=1"


@pytest.fixture
def measurer(builtin_plugin_host, pool, tmp_path):
    builtin_plugin_host.register(RegistersMeasurementFakes(), name="measurement-fakes")

    def make(spec: str) -> Measurer:
        return Measurer(spec, FAST, cache=None, artifact_dir=tmp_path / "artifacts", pool=pool)

    return make


@pytest.fixture(scope="module")
def untrained_mbv3() -> GraphIR:
    """An untrained ofa-mbv3 subnet: its outputs for two random inputs differ by ~1e-7."""
    net = OFAMobileNetV3(preset="tiny")
    return GraphIR.from_subnet(net, net.build().eval(), net.space.sample(5))


class Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.fc(x))


class IgnoresInput(nn.Module):
    """Its output is a bias whatever the input: no weights make a check of it mean anything."""

    def __init__(self) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.randn(4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :4] * 0.0 + self.bias


# -- signal ----------------------------------------------------------------------------------------


def test_signal_is_the_largest_difference_in_tolerances():
    a = [np.array([1.0, 2.0], dtype=np.float32)]
    assert signal(a, [a[0] + 0.0], rtol=1e-3, atol=1e-4) == 0.0
    # 0.011 apart where the tolerance is 1e-4 + 1e-3 * 1.011: about 10x
    assert signal(a, [a[0] + np.float32([0.011, 0])], 1e-3, 1e-4) == pytest.approx(9.97, rel=1e-2)
    assert signal(a, [np.array([1.0, np.nan])], 1e-3, 1e-4) == 0.0
    assert signal([np.zeros(2)], [np.array([0.0, 1.0])], 0.0, 0.0) == np.inf


def test_the_second_inputs_differ_and_stay_valid_ids():
    floats = np.zeros((2, 3), dtype=np.float32)
    ids = np.arange(12, dtype=np.int64).reshape(3, 4)
    other_floats, other_ids = other_inputs(None, [floats, ids])  # type: ignore[arg-type]
    assert other_floats.dtype == np.float32 and not np.array_equal(other_floats, floats)
    assert not np.array_equal(other_ids, ids) and sorted(other_ids.ravel()) == sorted(ids.ravel())
    same = np.full((2, 2), 7, dtype=np.int64)  # nothing to shuffle: still valid ids
    assert np.array_equal(other_inputs(None, [same])[0], same)  # type: ignore[arg-type]


def test_an_irs_own_second_inputs_are_used_and_its_margin_is_bounded():
    ir = GraphIR.from_module(Linear().eval(), (torch.randn(1, 8),), name="linear")
    second = torch.full((1, 8), 3.0)
    ir.second_inputs = (second,)  # real data its maker has (int8 models: calibration examples)
    check = make_check(ir, 1e-3, 1e-4)
    assert np.array_equal(check.inputs[1][0], second.numpy()) and check.margin == SIGNAL_MARGIN
    ir.metadata["signal_margin"] = 3.0
    assert make_check(ir, 1e-3, 1e-4).margin == 3.0
    ir.metadata["signal_margin"] = 0.1  # below 2 nothing is proven: the least margin holds
    assert make_check(ir, 1e-3, 1e-4).margin == LEAST_SIGNAL_MARGIN > 2


def test_an_untrained_supernet_has_no_signal_and_its_probe_does(untrained_mbv3):
    own = make_check(untrained_mbv3, 1e-3, 1e-4)
    assert (
        own.signal < 1.0 and not own.carries_signal
    )  # the 4e-7: a lowering ignoring x passes
    probe = probe_ir(untrained_mbv3)
    assert probe is not None and probe.structure_key == untrained_mbv3.structure_key
    assert probe.key != untrained_mbv3.key  # other weights, so another artifact
    assert make_check(probe, 1e-3, 1e-4, weights="probe").signal > 10 * SIGNAL_MARGIN


# -- through the measurement path --------------------------------------------------------------------


def test_a_target_that_ignores_its_input_is_caught(measurer):
    ir = GraphIR.from_module(Linear().eval(), (torch.randn(2, 8),), name="linear")
    assert measurer("fake-replay:ok").measure(ir).verification.startswith("2 inputs, own weights")
    with pytest.raises(MeasurementError, match="on input set 2 of 2"):
        measurer("fake-replay:constant").measure(ir)


def test_outputs_that_never_depend_on_the_input_are_refused_clearly(measurer):
    ir = GraphIR.from_module(IgnoresInput().eval(), (torch.randn(2, 8),), name="ignores")
    with pytest.raises(MeasurementError, match="unverifiable") as caught:
        measurer("fake-replay:ok").measure(ir)
    assert "a lowering that ignored its input would pass" in str(caught.value)
    assert "probe weights too" in str(caught.value)
    result = measurer("fake-replay:ok").measure_one(ir)
    assert result.kind == "unverifiable"


def test_an_onnx_model_without_signal_is_refused(measurer, tmp_path):
    module = IgnoresInput().eval()
    path = GraphIR.from_module(module, (torch.randn(2, 8),)).to_onnx(tmp_path / "ignores.onnx")
    with pytest.raises(MeasurementError, match="cannot re-seed its weights"):
        measurer(ORT).measure(GraphIR.from_onnx(path))


def test_an_untrained_subnet_is_checked_with_probe_weights(measurer, untrained_mbv3):
    result = measurer(ORT).measure(untrained_mbv3)
    assert "probe weights" in result.verification and result.median_s > 0


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_wrong_lowering_of_an_untrained_subnet_is_caught(
    builtin_plugin_host, measurer, untrained_mbv3, monkeypatch, fault
):
    import onnxruntime as ort

    op, wrong = FAULTS[fault]
    with monkeypatch.context() as patched:
        patched.setitem(onnx_emitter.RULES, op, wrong)
        broken = ort.InferenceSession(
            onnx_emitter.emit_onnx(untrained_mbv3).SerializeToString(),
            providers=["CPUExecutionProvider"],
        )
    # The untrained subnet's own check cannot see the fault: the broken model matches torch.
    check = make_check(untrained_mbv3, 1e-3, 1e-4)
    for inputs, reference in zip(check.inputs, check.references, strict=True):
        got = broken.run(None, {"x": inputs[0]})
        assert compare_outputs(got, reference, 1e-3, 1e-4)[1] == ""
    # The measurement path checks probe weights too, and catches it (the fault sits in the
    # target's compile, which runs in the isolated compile worker).
    builtin_plugin_host.register(RegistersBrokenLowering(), name="broken-lowering")
    with pytest.raises(MeasurementError, match="mismatch.*with probe weights"):
        measurer(f"fake-broken-lowering:cpu?threads=1&fault={fault}").measure(untrained_mbv3)
    assert measurer(ORT).measure(untrained_mbv3).median_s > 0  # the right lowering passes
