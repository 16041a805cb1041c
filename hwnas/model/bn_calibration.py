"""Batch-norm recalibration: reset a (sub)network's BN statistics and re-estimate them on calibration batches.

A subnet's slice of shared BN statistics does not match its own activations;
OFA's ``set_running_statistics`` re-estimates them before evaluating accuracy.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from hwnas.model.search_space import Subnet
    from hwnas.model.supernet import Supernet


def batch_norm_layers(module: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    """Every batch-norm layer that tracks running statistics."""
    from torch.nn.modules.batchnorm import _BatchNorm

    return [m for m in module.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def recalibrate_batch_norm(
    module: torch.nn.Module,
    batches: Iterable[Any],
    *,
    max_batches: int | None = None,
    prepare: Any = None,
) -> int:
    """Reset every BN layer's statistics and set them to the average over ``batches``; returns batches used.

    Each batch is a tensor or a tuple whose first item is the input (as data
    loaders yield ``(x, y)``); ``prepare`` may transform it first (e.g. resize).
    Only BN layers run in training mode meanwhile (dropout stays off), nothing
    is learned, and the module's modes and momenta are restored afterwards.
    """
    import torch

    layers = batch_norm_layers(module)
    if not layers:
        return 0
    modes = {m: m.training for m in module.modules()}
    momenta = {layer: layer.momentum for layer in layers}
    used = 0
    try:
        module.eval()
        for layer in layers:
            layer.reset_running_stats()
            # momentum None makes torch keep a cumulative average over all batches seen
            layer.momentum = None
            layer.train()
        with torch.no_grad():
            for batch in batches:
                if max_batches is not None and used >= max_batches:
                    break
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                if prepare is not None:
                    x = prepare(x)
                module(x)
                used += 1
    finally:
        for layer, momentum in momenta.items():
            layer.momentum = momentum
        for m, training in modes.items():
            m.train(training)
    if used == 0:
        raise ConfigError(
            "BN recalibration got no batches", hint="pass a non-empty calibration loader"
        )
    return used


def calibrate_subnet(
    supernet: Supernet,
    module: torch.nn.Module,
    subnet: Subnet,
    batches: Iterable[Any],
    *,
    max_batches: int | None = None,
    channels_last: bool = False,
) -> torch.nn.Module:
    """Extract ``subnet`` and recalibrate its BN statistics on ``batches`` (resized to the subnet's input).

    The supernet's own statistics are left untouched; the calibrated static
    module is returned in eval mode. With ``channels_last`` its conv weights
    are kept channels-last (feed it :func:`image_layout` inputs): 2-3x faster
    on CPU for depthwise convs.
    """
    static = supernet.extract(module, subnet)
    if channels_last:
        import torch

        static = static.to(memory_format=torch.channels_last)

    def prepare(x: Any) -> Any:
        x = supernet.adapt_input(x, subnet)
        return image_layout(x) if channels_last else x

    recalibrate_batch_norm(static, batches, max_batches=max_batches, prepare=prepare)
    return static.eval()


def image_layout(x: torch.Tensor) -> torch.Tensor:
    """An image batch (N, C, H, W) in channels-last memory order; other tensors as they are."""
    import torch

    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x
