"""``check_supernet``: a supernet plugin's contract: rebuildable, reproducible, and subnets cut out exactly.

For its smallest, largest and a random subnet, the extracted static module
must compute what the elastic module computes with that subnet active, hold
its own copies of the weights, depend on its input, and build a graph IR.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np

from hwnas.errors import ConfigError
from hwnas.model.search_space import SearchSpace
from hwnas.model.supernet import Supernet
from hwnas.testing.failures import ConformanceError, require


def _supernet_class(supernet: str | type[Supernet]) -> type[Supernet]:
    if isinstance(supernet, str):
        from hwnas.registry import supernet_class

        return supernet_class(supernet)
    return supernet


def check_supernet(
    supernet: str | type[Supernet], preset: str | None = None, *, build_ir: bool = True
) -> None:
    """Check a supernet class (or registered name) at ``preset`` (default: its own); raise :class:`ConformanceError`."""
    import torch

    cls = _supernet_class(supernet)
    where = f"supernet {getattr(cls, 'name', cls.__qualname__)!r}"
    require(isinstance(getattr(cls, "name", None), str) and cls.name, f"{where}: no name")
    require(bool(cls.description), f"{where}: no description (listings show it)")
    require(
        dataclasses.is_dataclass(cls.settings_class), f"{where}: settings_class is not a dataclass"
    )
    require(
        cls.default_preset in cls.presets,
        f"{where}: default_preset {cls.default_preset!r} is not one of its presets",
    )
    net = cls.configure(preset)
    space = net.space
    require(isinstance(space, SearchSpace), f"{where}: build_space() must return a SearchSpace")
    require(space.name == cls.name, f"{where}: its space is named {space.name!r}, not {cls.name!r}")
    require(space.size() > 1, f"{where}: the space has a single subnet")

    arguments = net.arguments
    try:
        json.dumps(arguments)
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"{where}: arguments are not JSON data ({exc})") from None
    require(
        cls.from_arguments(arguments).arguments == arguments,
        f"{where}: from_arguments(arguments) builds another supernet",
    )
    try:
        cls.configure(preset, {"hwnas_kit_no_such_setting": "1"})
    except ConfigError:
        pass
    else:
        raise ConformanceError(f"{where}: an unknown setting was accepted silently")

    module = net.build().eval()
    again = net.build().eval()
    for (name, a), (_, b) in zip(module.state_dict().items(), again.state_dict().items()):
        require(torch.equal(a, b), f"{where}: two builds differ in {name} (seed with init_seed)")
    broken = dict(module.state_dict())
    broken.pop(next(iter(broken)))
    try:
        net.load_state_dict(again, broken)
    except ConfigError:
        pass
    else:
        raise ConformanceError(f"{where}: load_state_dict() accepted a state dict missing a key")

    signal_weights(module)
    subnets = {
        "smallest": space.smallest(),
        "largest": space.largest(),
        "random": space.sample(np.random.default_rng(0)),
    }
    for label, subnet in subnets.items():
        _check_subnet(net, module, subnet, f"{where}, {label} subnet {subnet.key[:12]}", build_ir)


def signal_weights(module: Any, seed: int = 0) -> None:
    """Variance-preserving random weights (He init on every matrix/kernel, random BN statistics).

    Untrained supernets may start with activations that vanish (zero-initialised
    last BN of each block, as OFA does), so every subnet computes its bias
    whatever the input: extraction would look exact while proving nothing.
    """
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            if (
                tensor.dim() >= 2
            ):  # conv kernels and linear weights: keep the variance through layers
                fan_in = max(1, tensor[0].numel())
                noise = torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5
                tensor.copy_(noise)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("running_mean", "bias")):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            elif name.endswith("weight"):  # norm scales
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)


def _check_subnet(net: Supernet, module: Any, subnet: Any, where: str, build_ir: bool) -> None:
    import torch

    require(net.subnet(subnet.to_dict()) == subnet, f"{where}: subnet() does not round-trip")
    x = net.example_input(subnet, seed=0)
    other = net.example_input(subnet, seed=1)
    spec = net.input_spec(subnet)
    require(
        tuple(x.shape) == tuple(spec.shape),
        f"{where}: example_input has shape {tuple(x.shape)}, input_spec says {spec.shape}",
    )
    static = net.extract(module, subnet).eval()
    with torch.no_grad():
        elastic_out = net.forward(module, subnet, x)
        static_out = static(x)
        static_other = static(other)
    scale = float(static_out.abs().max()) or 1.0
    require(
        torch.allclose(elastic_out, static_out, rtol=1e-4, atol=1e-5 * scale),
        f"{where}: the extracted module computes something else than the elastic one "
        f"(max abs difference {float((elastic_out - static_out).abs().max()):.3g})",
    )
    require(
        float((static_out - static_other).abs().max()) > 1e-3 * scale,
        f"{where}: the extracted module gives the same output for two different inputs",
    )
    with torch.no_grad():  # the static module must own copies, not views of the supernet
        first = next(module.parameters())
        first.add_(1.0)
        unchanged = static(x)
        first.sub_(1.0)
    require(
        torch.equal(unchanged, static_out),
        f"{where}: changing the supernet's weights changed the extracted module (views, not copies)",
    )
    if build_ir:
        from hwnas.ir import GraphIR

        ir = GraphIR.from_subnet(net, module, subnet)
        require(
            [s.name for s in ir.input_specs] == [spec.name],
            f"{where}: the IR's input is named {[s.name for s in ir.input_specs]}, "
            f"input_spec says {spec.name!r} (name it after forward's argument)",
        )
        require(ir.macs > 0, f"{where}: the IR counts no MACs")
