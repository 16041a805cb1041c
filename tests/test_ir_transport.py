"""A GraphIR travels to the compile worker by pickle: same key, same module, same outputs, same ONNX."""

from __future__ import annotations

import pickle

import torch

from hwnas.ir import GraphIR
from hwnas.ir.portable_module import pack_module, unpack_module
from hwnas.model.loader import load_supernet


def test_a_subnet_ir_survives_the_trip_whole():
    loaded = load_supernet()
    supernet = loaded.supernet
    subnet = supernet.space.largest()
    ir = GraphIR.from_subnet(supernet, loaded.module, subnet)
    back = pickle.loads(pickle.dumps(ir))
    assert back.key == ir.key and back.macs == ir.macs and back.input_specs == ir.input_specs
    x = torch.randn(supernet.input_spec(subnet).shape)
    with torch.no_grad():
        want, got = ir.module(x), back.module(x)
    assert float(want.abs().max()) > 0.1 and torch.equal(want, got)
    assert back.graph_module is not None  # the recorded calls were resolved again
    with torch.no_grad():
        assert torch.allclose(back.graph_module(x)[0], want, atol=1e-6)
    original = {k: v for k, v in ir.module.state_dict().items()}
    assert all(torch.equal(original[k], v) for k, v in back.module.state_dict().items())


def test_parameters_flags_and_tensors_numpy_cannot_hold_are_kept():
    module = torch.nn.Linear(3, 2)
    module.register_buffer("scale", torch.ones(2, dtype=torch.bfloat16))
    module.bias.requires_grad_(False)
    back = unpack_module(pickle.loads(pickle.dumps(pack_module(module))))
    assert isinstance(back.weight, torch.nn.Parameter) and back.weight.requires_grad
    assert isinstance(back.bias, torch.nn.Parameter) and not back.bias.requires_grad
    assert back.scale.dtype == torch.bfloat16 and torch.equal(back.scale, module.scale)
    assert torch.equal(back.weight, module.weight)
    packed = pack_module(module)
    assert len(packed.tensors) == 2  # weight and bias as arrays; the bf16 buffer pickled by torch
