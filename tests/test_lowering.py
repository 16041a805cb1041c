"""The fast path: IR from one recorded forward pass (same ops as torch.export) and the ONNX emitter
(checked with onnx.checker, compared with torch in onnxruntime), their fallbacks, and TVM from that ONNX."""

from __future__ import annotations

import dataclasses
import functools
import logging

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from supernet_cases import FULL, TINY, ids
from torch import nn

from hwnas.ir import GraphIR
from hwnas.ir.from_forward import record
from hwnas.ir.from_torch import trace
from hwnas.ir.onnx_emitter import RULES, emit_onnx
from hwnas.ir.torch_calls import NotRecordable
from hwnas.model.supernet import Supernet
from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3
from hwnas_plugins.supernets.transformer import ElasticTransformer

torch.set_num_threads(1)

SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


@functools.cache
def supernet(cls: type[Supernet], preset: str) -> tuple[Supernet, nn.Module]:
    net = cls(preset=preset)
    return net, net.build().eval()


def assert_same_ops(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
    exported, recorded = trace(module, inputs), record(module, inputs)
    for a, b in zip(exported.ops, recorded.ops, strict=False):
        assert a == b, f"export: {a}\nrecord: {b}"
    assert len(exported.ops) == len(recorded.ops)
    assert exported.inputs == recorded.inputs and exported.outputs == recorded.outputs
    assert exported.output_tensors == recorded.output_tensors


def assert_onnx_matches_torch(ir: GraphIR, atol: float = 1e-5) -> onnx.ModelProto:
    model = emit_onnx(ir)
    onnx.checker.check_model(model, full_check=True)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, ir.input_arrays())
    for a, b in zip(got, ir.reference_outputs(), strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=1e-4)
    return model


# -- recording gives torch.export's ops ----------------------------------------------------------------


@pytest.mark.parametrize(("cls", "preset"), TINY, ids=ids(TINY))
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=SEEDS)
def test_recorded_subnets_have_exactly_the_exported_ops(cls, preset, seed):
    net, module = supernet(cls, preset)
    subnet = net.space.sample(seed)
    static = net.extract(module, subnet)
    assert_same_ops(static, (net.example_input(subnet),))
    fast = GraphIR.from_subnet(net, module, subnet)
    assert fast.key == GraphIR.from_module(static, (net.example_input(subnet),)).key


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "preset"), FULL, ids=ids(FULL))
def test_full_size_subnets_record_as_they_export(cls, preset):
    net, module = supernet(cls, preset)
    for subnet in (net.space.smallest(), net.space.sample(11)):
        assert_same_ops(net.extract(module, subnet), (net.example_input(subnet),))


class Zoo(nn.Module):
    """One of each call the recorder and the emitter know, outside the supernets' own patterns."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=2, dilation=2, bias=True)
        self.norm = nn.BatchNorm2d(8, affine=False)
        self.pool = nn.MaxPool2d(2)
        self.conv1d = nn.Conv1d(8, 6, 3, padding=1, bias=False)
        self.fc = nn.Linear(6, 5, bias=False)
        self.scale = nn.Parameter(torch.rand(5) + 0.5)
        self.ln = nn.LayerNorm(5, elementwise_affine=False)
        self.dropout = nn.Dropout(0.2)
        self.act = nn.GELU(approximate="tanh")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pool(F.silu(self.norm(self.conv(x))))  # (1, 8, 4, 4)
        y = torch.sigmoid(y).flatten(2)  # (1, 8, 16)
        y = self.conv1d(y).permute(0, 2, 1)  # (1, 16, 6)
        y = self.act(self.fc(torch.tanh(y))) * self.scale  # (1, 16, 5)
        y = self.ln(self.dropout(y)) - 0.5
        z = torch.matmul(y, y.transpose(1, 2)).softmax(dim=-1) / 2.0  # (1, 16, 16)
        w = z.view(1, 4, 64).mean(dim=1)  # (1, 64)
        return torch.cat([w, w.reshape(1, 8, 8)[:, 3]], dim=1) + 1.0


def test_each_known_call_records_as_it_exports_and_lowers_to_matching_onnx():
    model = Zoo().eval()
    with torch.no_grad():
        model.norm(torch.randn(4, 8, 4, 4) * 3)  # running statistics that are not 0 / 1
    model.norm.running_mean.uniform_(-1, 1)
    inputs = (torch.randn(1, 3, 16, 16),)
    assert_same_ops(model, inputs)
    ir = GraphIR.from_module(model, inputs, tracer="forward")
    assert ir._calls  # recorded, not exported
    kinds = {op.kind for op in ir.ops}
    assert {"conv1d", "conv2d", "batch_norm", "max_pool2d", "silu", "gelu", "softmax"} <= kinds
    assert_onnx_matches_torch(ir)


def test_bad_input_to_the_recorder_falls_back_to_export_and_says_so_once(caplog):
    class Cumulative(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.cumsum(x, dim=1) * 2

    with pytest.raises(NotRecordable, match="cumsum"):
        record(Cumulative(), (torch.randn(2, 3),))
    with caplog.at_level(logging.WARNING, logger="hwnas.ir"):
        ir = GraphIR.from_module(Cumulative(), torch.randn(2, 3), tracer="forward")
        again = GraphIR.from_module(Cumulative(), torch.randn(2, 3), tracer="forward")
    assert ir.key == again.key and [op.kind for op in ir.ops] == ["cumsum", "mul"]
    notes = [r.message for r in caplog.records if "Cumulative" in r.message]
    assert len(notes) == 1 and "torch.export instead" in notes[0]


def test_an_op_the_emitter_does_not_know_falls_back_to_torchs_exporter(caplog, tmp_path):
    class Cumulative(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(torch.cumsum(x, dim=1))

    assert "aten.cumsum.default" not in RULES
    ir = GraphIR.from_module(Cumulative(), torch.randn(2, 3))
    with caplog.at_level(logging.WARNING, logger="hwnas.ir"):
        path = ir.to_onnx(tmp_path / "a.onnx")
        ir.to_onnx(tmp_path / "b.onnx")
    notes = [r.message for r in caplog.records if "cumsum" in r.message]
    assert len(notes) == 1 and "dynamo exporter instead" in notes[0]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(None, ir.input_arrays())[0], ir.reference_outputs()[0], rtol=1e-5, atol=1e-6
    )


def test_torch_lowering_keeps_the_old_exporters(tmp_path):
    net, module = supernet(OFAMobileNetV3, "tiny")
    subnet = net.space.smallest()
    fast = GraphIR.from_subnet(net, module, subnet)
    slow = GraphIR.from_subnet(net, module, subnet, tracer="export", lowering="torch")
    assert fast.key == slow.key and slow._calls == () and fast._exported is None
    producers = {
        ir.lowering: onnx.load(str(ir.to_onnx(tmp_path / f"{ir.lowering}.onnx"))).producer_name
        for ir in (fast, slow)
    }
    assert producers == {"hwnas": "hwnas", "torch": "pytorch"}


# -- what the emitter writes -----------------------------------------------------------------------------


def test_emitted_onnx_folds_batch_norm_and_keeps_names(tmp_path):
    net, module = supernet(OFAMobileNetV3, "tiny")
    ir = GraphIR.from_subnet(net, module, net.space.sample(2))
    model = assert_onnx_matches_torch(ir)
    ops = {node.op_type for node in model.graph.node}
    assert "BatchNormalization" not in ops and "ConstantOfShape" not in ops
    assert {"Conv", "HardSwish", "HardSigmoid", "GlobalAveragePool", "Gemm"} <= ops
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["output"]
    assert model.opset_import[0].version == 18


@pytest.mark.parametrize(("cls", "preset"), TINY[2:], ids=["vit", "text"])
def test_transformer_onnx_matches_torch(cls, preset):
    net, module = supernet(cls, preset)
    for subnet in (net.space.smallest(), net.space.largest()):
        assert_onnx_matches_torch(GraphIR.from_subnet(net, module, subnet))


def test_kernels_cut_from_a_recorded_ir_equal_the_exported_ones():
    net, module = supernet(OFAMobileNetV3, "tiny")
    subnet = net.space.sample(7)
    fast = GraphIR.from_subnet(net, module, subnet)
    slow = GraphIR.from_subnet(net, module, subnet, tracer="export")
    assert [g.key for g in fast.kernel_groups] == [g.key for g in slow.kernel_groups]
    group = next(g for g in fast.kernel_groups if g.kind == "conv2d+batch_norm+hardswish")
    alone, exported = fast.kernel_ir(group.name), slow.kernel_ir(group.name)
    assert alone.key == exported.key and alone.macs == exported.macs == group.macs
    # the same ops, but for module paths: export keeps those of the nodes it was cut from
    assert [dataclasses.replace(op, module="") for op in exported.ops] == list(alone.ops)
    assert alone._calls  # the cut-out kernel was recorded too
    assert_onnx_matches_torch(alone)


@pytest.mark.slow
@pytest.mark.parametrize(("cls", "preset"), TINY, ids=ids(TINY))
def test_tvm_runs_the_emitted_onnx_with_torchs_output(cls, preset):
    import tvm
    from tvm import relax

    from hwnas_targets.tvm_compile import inference_passes

    net, module = supernet(cls, preset)
    ir = GraphIR.from_subnet(net, module, net.space.largest())
    executable = tvm.compile(inference_passes()(ir.to_relax()), target="llvm")
    vm = relax.VirtualMachine(executable, tvm.cpu())
    out = vm["main"](*[tvm.runtime.tensor(a) for a in ir.input_arrays().values()])
    np.testing.assert_allclose(out.numpy(), ir.reference_outputs()[0], atol=1e-4, rtol=1e-4)


def test_the_streamed_onnx_file_reads_back_as_the_whole_model(tmp_path):
    from hwnas.ir.onnx_emitter import emit

    net, module = supernet(ElasticTransformer, "tiny-text")
    ir = GraphIR.from_subnet(net, module, net.space.sample(3))
    emitted = emit(ir)
    path = ir.to_onnx(tmp_path / "streamed.onnx")
    back = onnx.load(str(path))
    assert back == emitted.proto() and len(back.graph.initializer) == len(emitted.arrays)
    assert back.graph.initializer[0].raw_data  # weights stored raw, little-endian
    onnx.checker.check_model(str(path), full_check=True)
