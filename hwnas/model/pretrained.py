"""A supernet wrapped around a pretrained model (InstaTune): what the wrapper returns, and the checks on it.

Supernet plugins build a :class:`PretrainedModel` (``Supernet.from_pretrained``);
fine-tuning it is :mod:`hwnas.model.training`, the command ``hwnas train --from-pretrained``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from hwnas.model.supernet import Supernet

#: What a subnet is trained and scored for: the pretrained model's embeddings, or classes.
TASKS = ("embedding", "classification")
#: The largest subnet must compute the pretrained model this closely (max abs difference).
LARGEST_TOLERANCE = 1e-5


@dataclass(eq=False)
class PretrainedModel:
    """An elastic supernet module whose largest subnet computes a pretrained model.

    ``original`` runs the pretrained model with its own code (a user's module,
    Hugging Face ``transformers``), when that code is at hand, so the claim can
    be checked; ``tokenizer`` turns texts into the token ids a text model takes.
    ``source`` is JSON-ready: what was loaded, from where, with which digests.
    """

    supernet: Supernet
    module: torch.nn.Module
    task: str
    source: dict[str, Any] = field(default_factory=dict)
    original: Callable[[torch.Tensor], torch.Tensor] | None = None
    tokenizer: Callable[[Sequence[str]], torch.Tensor] | None = None
    #: Peak fine-tuning learning rate that keeps the pretrained weights (BERTs want ~1e-4, CNNs ~1e-3).
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"pretrained task {self.task!r} is not one of {', '.join(TASKS)}")

    def largest_difference(self, batch: torch.Tensor) -> float | None:
        """Max abs difference between the largest subnet (extracted) and the original on ``batch``."""
        import torch

        if self.original is None:
            return None
        largest = self.supernet.space.largest()
        static = self.supernet.extract(self.module, largest).eval()
        with torch.no_grad():
            ours = static(self.supernet.adapt_input(batch, largest))
            theirs = self.original(batch)
        return float((ours - theirs).abs().max())

    def check_largest(self, batch: torch.Tensor) -> float | None:
        """:meth:`largest_difference`, raising :class:`ConfigError` when it exceeds :data:`LARGEST_TOLERANCE`."""
        difference = self.largest_difference(batch)
        if difference is not None and difference > LARGEST_TOLERANCE:
            raise ConfigError(
                f"the largest subnet of {self.supernet.name!r} differs from the pretrained model "
                f"by {difference:.3g} (more than {LARGEST_TOLERANCE:g})",
                hint="the model uses something the wrapper does not reproduce; please report it with the model",
            )
        return difference

    def teacher(self) -> torch.nn.Module:
        """A frozen static copy of the largest subnet (the pretrained model) to distil from."""
        largest = self.supernet.space.largest()
        static = self.supernet.extract(self.module, largest).eval()
        for parameter in static.parameters():
            parameter.requires_grad_(False)
        return static


@dataclass(frozen=True)
class FineTuned:
    """A fine-tuned pretrained supernet: what to checkpoint, and the facts the manifest and report state."""

    pretrained: PretrainedModel
    data: Any
    result: Any
    summary: dict[str, Any]


def load_pretrained(
    supernet: str,
    source: str,
    *,
    weights: str | None = None,
    overrides: dict[str, str] | None = None,
) -> PretrainedModel:
    """``supernet``'s wrapper around the pretrained model ``source`` (see ``Supernet.from_pretrained``)."""
    from hwnas.registry import supernet_class

    return supernet_class(supernet).from_pretrained(source, weights=weights, overrides=overrides)


def finetune_pretrained(
    pretrained: PretrainedModel,
    data_source: str | None,
    config: Any,
    *,
    overrides: dict[str, str] | None = None,
    progress: Any = None,
    calibration_batches: int = 4,
    calibration_batch_size: int = 32,
) -> FineTuned:
    """InstaTune: order the supernet by importance, check its largest subnet, then fine-tune every subnet.

    Text models train on ``data_source`` text (default: generated sentences),
    image models on images (default: digits). Without labels every subnet
    learns the pretrained embeddings (scored by fidelity); a classifier learns
    the pretrained model's soft labels and the labels; labelled text gets a
    task head trained by in-place distillation.
    """
    import dataclasses
    import time

    import torch

    from hwnas.model.training import (
        EmbeddingDistillation,
        InPlaceDistillation,
        TeacherDistillation,
        train_supernet,
    )

    overrides = dict(overrides or {})
    began = time.perf_counter()
    if pretrained.tokenizer is not None:
        from hwnas.model.text_data import GENERATED, load_text_data

        data = load_text_data(data_source or GENERATED, pretrained.tokenizer, seed=config.seed)
        if data.labelled and pretrained.task == "embedding":
            pretrained = load_pretrained(
                pretrained.supernet.name,
                str(pretrained.source["source"]),
                overrides=overrides | {"num_classes": str(data.num_classes)},
            )
    else:
        from hwnas.model.datasets import load_data

        data = load_data(data_source or "digits", seed=config.seed)
        fields = getattr(pretrained.supernet.settings, "__dataclass_fields__", {})
        if "image_size" in fields and "image_size" not in overrides:
            pretrained.supernet = type(pretrained.supernet).from_settings(
                pretrained.supernet.settings, {"image_size": data.image_size[0]}
            )
    supernet, module = pretrained.supernet, pretrained.module
    batches = [x for x, _ in data.calibration.batches(calibration_batch_size)]
    batches = batches[:calibration_batches]
    pretrained.supernet, ordering = supernet.sort_by_importance(module, batches)
    supernet = pretrained.supernet
    probe = data.validation.x[:64]
    difference = pretrained.check_largest(probe)
    teacher = pretrained.teacher()
    if pretrained.task == "embedding":
        with torch.no_grad():
            outputs = [
                teacher(supernet.adapt_input(x, supernet.space.largest()))
                for x, _ in data.validation.batches(256)
            ]
        data = dataclasses.replace(data, teacher=torch.cat(outputs))
        task: Any = EmbeddingDistillation(teacher, supernet)
    elif pretrained.original is not None:
        task = TeacherDistillation(config, teacher, supernet)
    else:
        task = InPlaceDistillation(config)
    prepared = time.perf_counter() - began
    result = train_supernet(supernet, module, data, config, progress=progress, task=task)
    summary = dict(pretrained.source) | {
        "task": pretrained.task,
        "distillation": type(task).__name__,
        "largest_vs_pretrained_max_abs_diff": difference,
        "importance": ordering,
        "prepare_seconds": round(prepared, 2),
        "finetune_seconds": round(result.seconds, 2),
    }
    if pretrained.task == "embedding":
        summary["fidelity"] = (
            f"mean cosine similarity of the subnet's embeddings to the pretrained model's on "
            f"{len(data.validation)} held-out texts ({data.name})"
        )
    return FineTuned(pretrained, data, result, summary)
