"""Accuracy of a supernet's subnets on image data: BN recalibrated on the calibration split, scored on validation.

:class:`SubnetAccuracy` is what a search calls per subnet; training uses the same
function per epoch. Training itself lives in :mod:`hwnas.model.training`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError
from hwnas.model.search_space import Subnet

if TYPE_CHECKING:
    import torch

    from hwnas.model.datasets import ImageData
    from hwnas.model.supernet import Supernet

EVAL_BATCH = 256


def check_data_fits(supernet: Supernet, module: torch.nn.Module, data: ImageData) -> None:
    """Raise :class:`ConfigError` unless ``supernet`` takes ``data``'s images and predicts all its classes."""
    import torch

    subnet = supernet.space.smallest()
    shape = tuple(supernet.input_spec(subnet, 1).shape)
    fields = getattr(supernet.settings, "__dataclass_fields__", {})
    if len(shape) != 4:
        raise ConfigError(
            f"supernet {supernet.name!r} takes inputs of shape {list(shape)}, not images (N,C,H,W)",
            hint="hwnas trains and scores image-classification supernets (ofa-mbv3, elastic-resnet)",
        )
    if shape[1] != data.channels:
        raise ConfigError(
            f"data {data.name!r} has {data.channels} channel(s) but supernet {supernet.name!r} "
            f"({supernet.preset or 'custom'}) takes {shape[1]}",
            hint=f"set the supernet's in_channels={data.channels}"
            if "in_channels" in fields
            else None,
        )
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            x = supernet.adapt_input(data.validation.x[:1], subnet)
            supernet.set_active(module, subnet)
            outputs = int(module(x).shape[-1])
    finally:
        module.train(was_training)
    if outputs < data.num_classes:
        raise ConfigError(
            f"data {data.name!r} has {data.num_classes} classes but supernet {supernet.name!r} predicts {outputs}",
            hint=f"set the supernet's num_classes={data.num_classes}"
            if "num_classes" in fields
            else None,
        )


def subnet_accuracy(
    supernet: Supernet,
    module: torch.nn.Module,
    subnet: Subnet,
    data: ImageData,
    *,
    split: str = "validation",
    batch_size: int = EVAL_BATCH,
) -> float:
    """Top-1 accuracy of ``subnet`` on ``split``, after recalibrating its BN on the calibration split.

    The subnet is extracted first, so the supernet's own statistics are left alone.
    """
    import torch

    from hwnas.model.bn_calibration import calibrate_subnet, image_layout

    static = calibrate_subnet(
        supernet, module, subnet, data.calibration.batches(batch_size), channels_last=True
    )
    correct = 0
    total = 0
    with torch.no_grad():
        for x, y in data.split(split).batches(batch_size):
            logits = static(image_layout(supernet.adapt_input(x, subnet)))
            correct += int((logits.argmax(dim=1) == y).sum())
            total += int(y.shape[0])
    return correct / total


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of a module's state dict (names, shapes, values), short: what accuracy caches depend on."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        value = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{list(value.shape)}:{value.dtype}".encode())
        digest.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


class SubnetAccuracy:
    """``accuracy(subnet) -> float``: validation accuracy with BN recalibrated, cached per canonical subnet key.

    The cache assumes the weights do not change; call :meth:`clear` after training more.
    """

    def __init__(
        self,
        supernet: Supernet,
        module: torch.nn.Module,
        data: ImageData,
        *,
        batch_size: int = EVAL_BATCH,
    ) -> None:
        check_data_fits(supernet, module, data)
        self.supernet = supernet
        self.module = module
        self.data = data
        self.batch_size = batch_size
        self._cache: dict[str, float] = {}
        self._fingerprint: str | None = None

    def __call__(self, subnet: Subnet | Mapping[str, Any]) -> float:
        subnet = self.supernet.subnet(subnet)
        if subnet.key not in self._cache:
            self._cache[subnet.key] = subnet_accuracy(
                self.supernet, self.module, subnet, self.data, batch_size=self.batch_size
            )
        return self._cache[subnet.key]

    def __len__(self) -> int:
        return len(self._cache)

    def clear(self) -> None:
        self._cache.clear()
        self._fingerprint = None

    @property
    def fingerprint(self) -> str:
        """What the accuracies depend on besides the subnet: weights and data (a run-store dedupe key part)."""
        if self._fingerprint is None:
            description = json.dumps(
                {k: self.data.description.get(k) for k in ("source", "seed", "examples", "splits")},
                sort_keys=True,
                default=str,
            )
            data = hashlib.sha256(description.encode()).hexdigest()[:12]
            self._fingerprint = (
                f"accuracy:{self.supernet.name}:{weights_digest(self.module)}:{data}"
            )
        return self._fingerprint
