"""The graph IR: ops, costs and peak memory, kernel groups, keys, JSON, and lowering to ONNX and TVM Relax."""

from __future__ import annotations

import functools
import json
import subprocess
import sys

import networkx as nx
import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from hwnas.errors import ConfigError
from hwnas.ir import GraphIR
from hwnas.model.supernet import Supernet
from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3
from hwnas_plugins.supernets.resnet import ElasticResNetSupernet
from hwnas_plugins.supernets.transformer import ElasticTransformer

torch.set_num_threads(1)

SUPERNETS = [
    (OFAMobileNetV3, "tiny"),
    (ElasticResNetSupernet, "tiny"),
    (ElasticTransformer, "tiny"),
    (ElasticTransformer, "tiny-text"),
]
IDS = [f"{cls.name}-{preset}" for cls, preset in SUPERNETS]
FEW = settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = st.integers(min_value=0, max_value=2**31 - 1)


@functools.cache
def supernet(cls: type[Supernet], preset: str) -> tuple[Supernet, nn.Module]:
    net = cls(preset=preset)
    return net, net.build().eval()


@functools.cache
def tiny_ir(seed: int = 3) -> GraphIR:
    net, module = supernet(OFAMobileNetV3, "tiny")
    return GraphIR.from_subnet(net, module, net.space.sample(seed))


class Residual(nn.Module):
    """conv-bn-relu, conv-relu, a skip add, flatten and a linear head: small enough to count by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.head = nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = torch.relu(self.bn(self.conv1(x)))
        c = torch.relu(self.conv2(a))
        return self.head(torch.flatten(a + c, 1))


# -- building, costs and memory --------------------------------------------------------------


def test_ops_costs_and_peak_memory_of_a_small_model():
    model = Residual()
    ir = GraphIR.from_module(model, torch.randn(1, 1, 8, 8))
    assert [op.kind for op in ir.ops] == [
        "conv2d",
        "batch_norm",
        "relu",
        "conv2d",
        "relu",
        "add",
        "flatten",
        "linear",
    ]
    assert ir.macs == 64 * 4 * 9 + 64 * 4 * 4 + 10 * 256
    assert ir.params == sum(p.numel() for p in model.parameters())
    # walk: conv2 and relu(c) run while `a` waits for the add -> three 1 KiB maps live at once
    assert ir.peak_activation_bytes == 3 * 1024
    assert [s.shape for s in ir.input_specs] == [(1, 1, 8, 8)]
    assert [(s.name, s.shape, s.dtype) for s in ir.output_specs] == [("output", (1, 10), "float32")]
    conv = ir.ops[0]
    assert conv.attr("padding") == (1, 1) and conv.attr("stride") == (1, 1)
    assert conv.weights[0].name == "conv1.weight" and conv.module == "conv1"
    assert conv.bytes_moved == 256 + 4 * 9 * 4 + 1024
    assert ir.totals()["kernels"] == len(ir.kernel_groups)


def test_graph_is_a_dag_whose_edges_are_tensors():
    ir = GraphIR.from_module(Residual(), torch.randn(1, 1, 8, 8))
    graph = ir.graph
    assert nx.is_directed_acyclic_graph(graph)
    assert graph.number_of_nodes() == len(ir.ops) + len(ir.input_specs)
    assert ir.input_specs[0].name == "x"  # the forward argument's name
    assert graph.nodes["x"]["op"].kind == "input"
    for source, target, data in graph.edges(data=True):
        assert data["tensor"].name in graph.nodes[target]["op"].inputs
        assert data["tensor"] in graph.nodes[source]["op"].outputs
    add = next(op for op in ir.ops if op.kind == "add")
    assert sorted(graph.predecessors(add.name)) == sorted(["relu", "relu_1"])
    assert ir.consumers("relu") == ["conv2d_1", "add"]


def test_kernel_groups_fuse_conv_norm_activation_and_key_on_shapes_only():
    ir = GraphIR.from_module(Residual(), torch.randn(1, 1, 8, 8))
    assert [g.kind for g in ir.kernel_groups] == [
        "conv2d+batch_norm+relu",
        "conv2d+relu",
        "add",
        "flatten",
        "linear",
    ]
    first = ir.kernel_groups[0]
    # the relu's output feeds two ops, but it is the group's one output; the conv's stays inside
    assert [t.shape for t in first.outputs] == [(1, 4, 8, 8)]
    assert first.macs == 64 * 4 * 9 and first.params == 36 + 8
    assert "conv2d+batch_norm+relu(" in first.key and "1x1x8x8->1x4x8x8" in first.key
    second = ir.kernel_groups[1]
    assert second.name == "conv2d_1" and "conv2d_1" not in second.key  # names never enter keys
    again = GraphIR.from_module(Residual(), torch.randn(1, 1, 8, 8))
    assert [g.key for g in again.kernel_groups] == [g.key for g in ir.kernel_groups]
    bigger = GraphIR.from_module(Residual().eval(), torch.randn(2, 1, 8, 8))
    assert bigger.kernel_groups[0].key != first.key


def test_kernel_modules_reproduce_the_network_piece_by_piece():
    ir = tiny_ir()
    values: dict[str, torch.Tensor] = {}

    class Capture(torch.fx.Interpreter):
        def run_node(self, n: torch.fx.Node) -> object:
            result = super().run_node(n)
            values[n.name] = result
            return result

    with torch.no_grad():
        Capture(ir.graph_module).run(*ir.example_inputs)
    values[ir.input_specs[0].name] = ir.example_inputs[0]
    assert len(ir.kernel_groups) < len(ir.ops)
    for group in ir.kernel_groups:
        module, example = ir.kernel_module(group)
        assert [tuple(t.shape) for t in example] == [t.shape for t in group.inputs]
        with torch.no_grad():
            out = module(*[values[t.name] for t in group.inputs])
        assert torch.allclose(out, values[group.outputs[0].name], atol=1e-6), group.key
    conv = next(g for g in ir.kernel_groups if g.kind.startswith("conv2d+batch_norm"))
    alone = ir.kernel_ir(conv.name)
    assert alone.macs == conv.macs and alone.params == conv.params
    assert alone.metadata["kernel_key"] == conv.key
    with pytest.raises(ConfigError, match="no kernel group 'nope'"):
        ir.kernel_group("nope")


@pytest.mark.parametrize(("cls", "preset"), SUPERNETS, ids=IDS)
@FEW
@given(seed=SEEDS)
def test_macs_match_flop_counter_and_params_match_numel(cls, preset, seed):
    net, module = supernet(cls, preset)
    subnet = net.space.sample(seed)
    ir = GraphIR.from_subnet(net, module, subnet)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        ir.module(*ir.example_inputs)
    flops = counter.get_total_flops()
    assert abs(2 * ir.macs - flops) <= 0.01 * flops
    assert ir.params == sum(p.numel() for p in ir.module.parameters())
    assert ir.peak_activation_bytes >= max(t.nbytes for op in ir.ops for t in op.outputs)
    assert ir.metadata["subnet_key"] == subnet.key and ir.name == f"{net.name}/{subnet.key}"
    assert ir.input_specs == (net.input_spec(subnet),)  # names match, so ONNX / Relax inputs do too


# -- keys and JSON -----------------------------------------------------------------------------


def test_key_covers_structure_and_weights_and_is_stable_across_processes():
    ir = tiny_ir()
    net, module = supernet(OFAMobileNetV3, "tiny")
    subnet = net.space.sample(3)
    assert GraphIR.from_subnet(net, module, subnet).key == ir.key
    retrained = net.build().eval()
    with torch.no_grad():
        retrained.classifier[1].bias.add_(1.0)
    moved = GraphIR.from_subnet(net, retrained, subnet)
    assert moved.structure_key == ir.structure_key and moved.key != ir.key
    assert GraphIR.from_subnet(net, module, net.space.sample(4)).structure_key != ir.structure_key
    code = (
        "from hwnas.ir import GraphIR\n"
        "from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3\n"
        "net = OFAMobileNetV3(preset='tiny')\n"
        "print(GraphIR.from_subnet(net, net.build(), net.space.sample(3)).key)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == ir.key


def test_json_round_trip_keeps_graph_metadata():
    ir = tiny_ir()
    text = ir.to_json()
    back = GraphIR.from_json(text)
    assert back.key == ir.key and back.structure_key == ir.structure_key
    assert back.totals() == ir.totals()
    assert back.ops == ir.ops and back.input_specs == ir.input_specs
    assert [g.key for g in back.kernel_groups] == [g.key for g in ir.kernel_groups]
    assert back.metadata["subnet_key"] == ir.metadata["subnet_key"]
    assert json.loads(text)["totals"]["macs"] == ir.macs
    with pytest.raises(ConfigError, match="no torch program"):
        back.to_onnx("unused.onnx")
    with pytest.raises(ConfigError, match="no torch module"):
        back.reference_outputs()
    tampered = json.loads(text)
    tampered["ops"][0]["outputs"][0]["shape"][1] += 1
    with pytest.raises(ConfigError, match="does not match its content"):
        GraphIR.from_json(tampered)
    with pytest.raises(ConfigError, match="not an hwnas IR document"):
        GraphIR.from_json({"format": "something-else"})
    with pytest.raises(ConfigError, match="not valid JSON"):
        GraphIR.from_json("{")


def test_bad_inputs_raise_clear_errors(tmp_path):
    class DataDependent(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x * 2 if x.sum() > 0 else x - 1

    with pytest.raises(ConfigError, match="torch.export failed on DataDependent"):
        GraphIR.from_module(DataDependent(), torch.randn(2))
    with pytest.raises(ConfigError, match="does not exist"):
        GraphIR.from_onnx(tmp_path / "missing.onnx")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 definitely not a protobuf of a model")
    with pytest.raises(ConfigError, match="not a readable ONNX model"):
        GraphIR.from_onnx(garbage)
    with pytest.raises(ConfigError, match="opset 13 is too old"):
        tiny_ir().to_onnx(tmp_path / "old.onnx", opset=13)


# -- lowering ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "preset"), SUPERNETS, ids=IDS)
@settings(
    max_examples=1,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(seed=SEEDS)
def test_onnx_export_matches_torch_in_onnxruntime(cls, preset, seed, tmp_path):
    import onnxruntime as ort

    net, module = supernet(cls, preset)
    ir = GraphIR.from_subnet(net, module, net.space.sample(seed))
    path = ir.to_onnx(tmp_path / f"{seed}.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version >= 17
    assert [i.name for i in model.graph.input] == [s.name for s in ir.input_specs]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, ir.input_arrays())
    expected = ir.reference_outputs()
    assert len(got) == len(expected) == len(ir.output_specs)
    for a, b, spec in zip(got, expected, ir.output_specs, strict=True):
        assert a.shape == spec.shape
        np.testing.assert_allclose(a, b, atol=1e-4, rtol=1e-4)


def test_onnx_file_reads_back_into_an_ir_with_the_same_costs(tmp_path):
    ir = tiny_ir()
    path = ir.to_onnx(tmp_path / "tiny.onnx")
    back = GraphIR.from_onnx(path)
    assert back.source == "onnx"
    assert back.macs == ir.macs
    assert [(s.shape, s.dtype) for s in back.input_specs] == [
        (s.shape, s.dtype) for s in ir.input_specs
    ]
    assert [s.shape for s in back.output_specs] == [s.shape for s in ir.output_specs]
    # the exporter folds batch norms into the convs: fewer ops, fused groups without a norm
    assert len(back.ops) < len(ir.ops)
    kinds = {g.kind for g in back.kernel_groups}
    assert "conv2d+hardswish" in kinds and "conv2d+relu" in kinds
    assert back.peak_activation_bytes > 0 and back.params > 0
    copy = back.to_onnx(tmp_path / "copy.onnx")
    assert copy.read_bytes() == path.read_bytes()
    assert back.to_relax()["main"] is not None


@pytest.mark.parametrize(("cls", "preset"), SUPERNETS, ids=IDS)
def test_relax_module_builds_with_parameters_bound(cls, preset):
    net, module = supernet(cls, preset)
    ir = GraphIR.from_subnet(net, module, net.space.sample(1))
    main = ir.to_relax()["main"]
    assert [p.name for p in main.params] == [s.name for s in ir.input_specs]
    assert [int(d) for d in main.ret_ty.shape] == list(ir.output_specs[0].shape)


def test_relax_parameters_can_stay_inputs_and_be_detached():
    from tvm import relax

    model = Residual().eval()
    ir = GraphIR.from_module(model, torch.randn(1, 1, 8, 8))
    detached, params = relax.frontend.detach_params(ir.to_relax(keep_params_as_input=True))
    names = [p.name for p in detached["main"].params]
    assert names[0] == "x" and len(names) > 1
    weights = params["main"]
    assert len(weights) == len(names) - 1
    # the trainable parameters become inputs; BN running statistics stay constants
    assert sorted(int(np.prod(w.shape)) for w in weights) == sorted(
        p.numel() for p in model.parameters()
    )


@pytest.mark.slow
def test_relax_module_runs_in_tvm_with_torchs_output():
    import tvm
    from tvm import relax

    net, module = supernet(OFAMobileNetV3, "tiny")
    ir = GraphIR.from_subnet(net, module, net.space.smallest())
    executable = tvm.compile(ir.to_relax(), target="llvm")
    vm = relax.VirtualMachine(executable, tvm.cpu())
    inputs = [tvm.runtime.tensor(a) for a in ir.input_arrays().values()]
    out = vm["main"](*inputs)
    np.testing.assert_allclose(out.numpy(), ir.reference_outputs()[0], atol=1e-4, rtol=1e-4)
