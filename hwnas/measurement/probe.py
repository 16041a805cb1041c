"""Probe weights: the same network re-seeded so that its outputs depend on its input, for checking untrained models.

An untrained supernet's outputs barely depend on the input (signal dies in
the depthwise convs), so comparing them to torch proves nothing. A probe
keeps the graph, draws He-scaled weights and calibrates batch norms on random
inputs; a lowering that drops or swaps an op then changes the output.
"""

from __future__ import annotations

import copy
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

    from hwnas.ir import GraphIR

#: Seed of every probe, so a probe IR (and its compiled artifact) is the same each time.
PROBE_SEED = 0


def probe_ir(ir: GraphIR, seed: int = PROBE_SEED) -> GraphIR | None:
    """``ir``'s graph over re-seeded, signal-carrying weights; ``None`` for an IR without a torch module."""
    if ir.module is None or ir.example_inputs is None:
        return None
    module = copy.deepcopy(ir.module)
    reseed(module, seed)
    calibrate_batch_norms(module, ir.example_inputs, seed)
    return ir.with_weights(module, name=f"{ir.name} (probe weights)")


def reseed(module: torch.nn.Module, seed: int) -> None:
    """Draw every parameter again: matrices and kernels He-scaled (N(0, 2 / fan-in)), norm scales
    in [0.5, 1.5), biases and the rest N(0, 0.1^2)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if not parameter.is_floating_point():
                continue
            shape = parameter.shape
            if parameter.dim() >= 2:
                fan_in = max(1, parameter[0].numel())
                values = torch.randn(shape, generator=generator) * math.sqrt(2.0 / fan_in)
            elif name.rsplit(".", 1)[-1] == "weight":  # batch / layer norm scales
                values = torch.rand(shape, generator=generator) + 0.5
            else:
                values = torch.randn(shape, generator=generator) * 0.1
            parameter.copy_(values.to(parameter.dtype))


def calibrate_batch_norms(
    module: torch.nn.Module, example_inputs: tuple[torch.Tensor, ...], seed: int
) -> None:
    """Set every batch norm's running statistics to those of its input on a small random batch.

    Each norm then normalises what reaches it, so no layer silences or
    saturates the signal. Left at the reset statistics if the batch does not run.
    """
    import torch

    norms = [
        m
        for m in module.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    ]
    if not norms:
        return
    generator = torch.Generator().manual_seed(seed + 1)
    batch = []
    for x in example_inputs:  # the example and a random neighbour: 2 samples per channel at least
        other = (
            torch.randn(x.shape, generator=generator, dtype=x.dtype)
            if x.is_floating_point()
            else x.flip(-1)
        )
        batch.append(torch.cat([x, other]))
    momenta = [m.momentum for m in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: one batch sets the statistics
        norm.train()
    try:
        with torch.no_grad():
            module(*batch)
    except Exception:  # a module fixed to batch 1: keep the reset statistics (mean 0, variance 1)
        for norm in norms:
            norm.reset_running_stats()
    finally:
        for norm, momentum in zip(norms, momenta, strict=True):
            norm.momentum = momentum
        module.eval()
