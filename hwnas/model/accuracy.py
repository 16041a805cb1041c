"""Accuracy of a supernet's subnets (BN recalibrated on the calibration split, scored on validation), and the
embedding fidelity of subnets distilled from a pretrained encoder.

:class:`SubnetAccuracy` / :class:`SubnetFidelity` are what a search calls per subnet; training uses the same
functions per epoch. Training itself lives in :mod:`hwnas.model.training`.
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
    from hwnas.model.text_data import TextData

EVAL_BATCH = 256


def check_data_fits(
    supernet: Supernet, module: torch.nn.Module, data: ImageData | TextData
) -> None:
    """Raise :class:`ConfigError` unless ``supernet`` takes ``data``'s inputs and predicts all its classes."""
    import torch

    subnet = supernet.space.smallest()
    shape = tuple(supernet.input_spec(subnet, 1).shape)
    fields = getattr(supernet.settings, "__dataclass_fields__", {})
    if data.validation.x.dim() == 2 and len(shape) == 2:
        if data.num_classes == 0:
            raise ConfigError(
                f"data {data.name!r} has no labels, so accuracy cannot be measured",
                hint="score an embedding supernet by fidelity (--objectives fidelity,latency)",
            )
    elif len(shape) != 4:
        raise ConfigError(
            f"supernet {supernet.name!r} takes inputs of shape {list(shape)}, not images (N,C,H,W)",
            hint="hwnas trains and scores image-classification supernets (ofa-mbv3, elastic-resnet)",
        )
    elif shape[1] != data.channels:
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


def subnet_fidelity(
    supernet: Supernet,
    module: torch.nn.Module,
    subnet: Subnet,
    data: TextData,
    *,
    batch_size: int = EVAL_BATCH,
) -> float:
    """Mean cosine similarity of ``subnet``'s outputs to the pretrained model's (``data.teacher``) on validation."""
    import torch
    import torch.nn.functional as F

    from hwnas.model.bn_calibration import calibrate_subnet

    if getattr(data, "teacher", None) is None:
        raise ConfigError(
            f"data {data.name!r} holds no pretrained-model outputs to measure fidelity against",
            hint="fidelity is defined for supernets fine-tuned with `hwnas train --from-pretrained`",
        )
    static = calibrate_subnet(supernet, module, subnet, data.calibration.batches(batch_size))
    total = 0.0
    with torch.no_grad():
        for start in range(0, len(data.validation), batch_size):
            x = data.validation.x[start : start + batch_size]
            out = static(supernet.adapt_input(x, subnet))
            target = data.teacher[start : start + batch_size]
            total += float(F.cosine_similarity(out, target, dim=-1).sum())
    return total / len(data.validation)


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

    metric = "accuracy"

    def __init__(
        self,
        supernet: Supernet,
        module: torch.nn.Module,
        data: ImageData | TextData,
        *,
        batch_size: int = EVAL_BATCH,
    ) -> None:
        self.check(supernet, module, data)
        self.supernet = supernet
        self.module = module
        self.data = data
        self.batch_size = batch_size
        self._cache: dict[str, float] = {}
        self._fingerprint: str | None = None

    def __call__(self, subnet: Subnet | Mapping[str, Any]) -> float:
        subnet = self.supernet.subnet(subnet)
        if subnet.key not in self._cache:
            self._cache[subnet.key] = self.score(subnet)
        return self._cache[subnet.key]

    def check(self, supernet: Supernet, module: torch.nn.Module, data: Any) -> None:
        check_data_fits(supernet, module, data)

    def score(self, subnet: Subnet) -> float:
        return subnet_accuracy(
            self.supernet, self.module, subnet, self.data, batch_size=self.batch_size
        )

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
                f"{self.metric}:{self.supernet.name}:{weights_digest(self.module)}:{data}"
            )
        return self._fingerprint


class SubnetFidelity(SubnetAccuracy):
    """``fidelity(subnet) -> float``: mean cosine similarity to the pretrained encoder's embeddings, cached."""

    metric = "fidelity"

    def check(self, supernet: Supernet, module: torch.nn.Module, data: Any) -> None:
        if getattr(data, "teacher", None) is None:
            raise ConfigError(
                f"supernet {supernet.name!r} has no pretrained-model embeddings to score fidelity against",
                hint="fidelity needs a checkpoint from `hwnas train --from-pretrained` on unlabelled text",
            )

    def score(self, subnet: Subnet) -> float:
        return subnet_fidelity(
            self.supernet, self.module, subnet, self.data, batch_size=self.batch_size
        )
