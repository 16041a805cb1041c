"""Weight-sharing supernet training: the sandwich rule with in-place distillation, as BigNAS and Once-for-All do.

Each step trains the largest subnet on the labels, then the smallest and k random
subnets on the largest's soft labels, accumulating gradients before one update.
Fine-tuning a supernet wrapped around a pretrained model (InstaTune) runs the
same loop with a :class:`SandwichTask` that distils every subnet from the frozen
pretrained teacher. Data loading is :mod:`hwnas.model.datasets` and
:mod:`hwnas.model.text_data`; scoring subnets is :mod:`hwnas.model.accuracy`.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from hwnas.model.datasets import ImageData
    from hwnas.model.search_space import Subnet
    from hwnas.model.supernet import Supernet
    from hwnas.model.text_data import TextData


@dataclass(frozen=True)
class TrainingConfig:
    """How to train a supernet.

    ``random_subnets`` is k of the sandwich rule; ``distill_weight`` is the share
    of the soft-label (teacher) loss for every subnet but the largest, the rest
    being the hard-label loss. ``max_steps`` stops early (quick checks, tests).
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 0.004
    weight_decay: float = 1e-4
    warmup_steps: int = 20
    seed: int = 0
    random_subnets: int = 2
    distill_weight: float = 0.7
    label_smoothing: float = 0.1
    grad_clip: float = 5.0
    max_steps: int | None = None
    channels_last: bool = True

    def __post_init__(self) -> None:
        checks = [
            ("epochs", self.epochs >= 1, "at least 1"),
            ("batch_size", self.batch_size >= 2, "at least 2 (batch norm needs two examples)"),
            ("lr", self.lr > 0 and math.isfinite(self.lr), "a positive number"),
            ("weight_decay", self.weight_decay >= 0, "zero or more"),
            ("warmup_steps", self.warmup_steps >= 0, "zero or more"),
            ("random_subnets", self.random_subnets >= 0, "zero or more"),
            ("distill_weight", 0.0 <= self.distill_weight <= 1.0, "between 0 and 1"),
            ("label_smoothing", 0.0 <= self.label_smoothing < 1.0, "in [0, 1)"),
            ("grad_clip", self.grad_clip > 0, "positive"),
            ("max_steps", self.max_steps is None or self.max_steps >= 1, "at least 1"),
        ]
        for field, ok, expected in checks:
            if not ok:
                raise ConfigError(
                    f"training setting {field}={getattr(self, field)!r} must be {expected}"
                )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class StepLosses:
    """Losses of one sandwich step: the largest subnet's on labels, the mean of the others' (distilled)."""

    teacher: float
    students: float


@dataclass(frozen=True)
class EpochReport:
    """One epoch: mean losses, validation score of the smallest and largest subnet (BN recalibrated).

    The score is the task's metric: top-1 accuracy, or the embedding fidelity
    of a supernet distilled from a pretrained encoder (field names kept for
    the checkpoints that store them).
    """

    epoch: int
    steps: int
    teacher_loss: float
    student_loss: float
    smallest_accuracy: float
    largest_accuracy: float
    seconds: float
    metric: str = "accuracy"


@dataclass(frozen=True)
class TrainingResult:
    """A finished training run: its config, every epoch, total steps and wall time."""

    config: TrainingConfig
    epochs: tuple[EpochReport, ...]
    steps: int
    seconds: float
    metric: str = "accuracy"

    @property
    def smallest_accuracy(self) -> float:
        return self.epochs[-1].smallest_accuracy

    @property
    def largest_accuracy(self) -> float:
        return self.epochs[-1].largest_accuracy

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.to_dict(),
            "epochs": [asdict(e) for e in self.epochs],
            "steps": self.steps,
            "seconds": self.seconds,
            "smallest_accuracy": self.smallest_accuracy,
            "largest_accuracy": self.largest_accuracy,
            "metric": self.metric,
        }


class TrainingProgress:
    """Receives training progress; the default ignores it. The CLI draws a rich progress bar from it."""

    def start(self, total_steps: int, steps_per_epoch: int) -> None:
        """Training is about to run ``total_steps`` steps."""

    def step(self, step: int, epoch: int, losses: StepLosses) -> None:
        """Step ``step`` (1-based, over all epochs) of ``epoch`` finished."""

    def epoch(self, report: EpochReport) -> None:
        """An epoch ended and its subnets were validated."""

    def finish(self, result: TrainingResult) -> None:
        """Training ended."""


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a distribution (the teacher's soft labels), averaged over the batch."""
    import torch.nn.functional as F

    return -(target_probs * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


class SandwichTask(ABC):
    """What the sandwich rule trains each subnet towards, and how a subnet is scored after an epoch."""

    #: Name of the score (``accuracy`` or ``fidelity``), in reports and checkpoints.
    metric: str = "accuracy"

    def check(self, supernet: Supernet, module: torch.nn.Module, data: Any) -> None:  # noqa: B027
        """Raise :class:`ConfigError` if ``data`` does not fit; called once before training."""

    @abstractmethod
    def targets(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        """What every subnet of this batch learns from before the largest runs (teacher outputs), or ``None``."""

    @abstractmethod
    def loss(
        self, outputs: torch.Tensor, targets: Any, y: torch.Tensor, *, largest: bool
    ) -> torch.Tensor:
        """The loss of one subnet's ``outputs``; ``largest`` marks the first, largest subnet of the step."""

    def after_largest(self, outputs: torch.Tensor, targets: Any) -> Any:
        """Targets for the other subnets once the largest ran (in-place distillation replaces them)."""
        return targets

    @abstractmethod
    def score(
        self, supernet: Supernet, module: torch.nn.Module, subnet: Subnet, data: Any
    ) -> float:
        """The subnet's validation score (higher is better)."""


class InPlaceDistillation(SandwichTask):
    """BigNAS / OFA: the largest subnet learns the labels, every other one its soft labels (and the labels)."""

    def __init__(self, config: TrainingConfig) -> None:
        self.config = config

    def check(self, supernet: Supernet, module: torch.nn.Module, data: Any) -> None:
        from hwnas.model.accuracy import check_data_fits

        check_data_fits(supernet, module, data)

    def targets(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        return None

    def loss(
        self, outputs: torch.Tensor, targets: Any, y: torch.Tensor, *, largest: bool
    ) -> torch.Tensor:
        import torch.nn.functional as F

        smoothing = self.config.label_smoothing
        if largest:
            return F.cross_entropy(outputs, y, label_smoothing=smoothing)
        weight = self.config.distill_weight
        loss = weight * soft_cross_entropy(outputs, targets)
        if weight < 1.0:
            loss = loss + (1.0 - weight) * F.cross_entropy(outputs, y, label_smoothing=smoothing)
        return loss

    def after_largest(self, outputs: torch.Tensor, targets: Any) -> Any:
        import torch.nn.functional as F

        return F.softmax(outputs.detach(), dim=1)

    def score(
        self, supernet: Supernet, module: torch.nn.Module, subnet: Subnet, data: Any
    ) -> float:
        from hwnas.model.accuracy import subnet_accuracy

        return subnet_accuracy(supernet, module, subnet, data)


class TeacherDistillation(InPlaceDistillation):
    """InstaTune on a classifier: every subnet, the largest included, learns the frozen pretrained model's soft labels."""

    def __init__(
        self, config: TrainingConfig, teacher: torch.nn.Module, supernet: Supernet
    ) -> None:
        super().__init__(config)
        self.teacher = teacher
        self.supernet = supernet

    def targets(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        import torch
        import torch.nn.functional as F

        largest = self.supernet.space.largest()
        with torch.no_grad():
            return F.softmax(self.teacher(self.supernet.adapt_input(x, largest)), dim=1)

    def loss(
        self, outputs: torch.Tensor, targets: Any, y: torch.Tensor, *, largest: bool
    ) -> torch.Tensor:
        return super().loss(outputs, targets, y, largest=False)

    def after_largest(self, outputs: torch.Tensor, targets: Any) -> Any:
        return targets


class EmbeddingDistillation(SandwichTask):
    """InstaTune without labels: every subnet learns the frozen pretrained encoder's embeddings (cosine loss)."""

    metric = "fidelity"

    def __init__(self, teacher: torch.nn.Module, supernet: Supernet) -> None:
        self.teacher = teacher
        self.supernet = supernet

    def targets(self, x: torch.Tensor, y: torch.Tensor) -> Any:
        import torch

        with torch.no_grad():
            return self.teacher(self.supernet.adapt_input(x, self.supernet.space.largest()))

    def loss(
        self, outputs: torch.Tensor, targets: Any, y: torch.Tensor, *, largest: bool
    ) -> torch.Tensor:
        import torch.nn.functional as F

        return (1.0 - F.cosine_similarity(outputs, targets, dim=-1)).mean()

    def score(
        self, supernet: Supernet, module: torch.nn.Module, subnet: Subnet, data: Any
    ) -> float:
        from hwnas.model.accuracy import subnet_fidelity

        return subnet_fidelity(supernet, module, subnet, data)


def sandwich_step(
    supernet: Supernet,
    module: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    students: list[Subnet],
    optimizer: torch.optim.Optimizer,
    config: TrainingConfig,
    task: SandwichTask | None = None,
) -> StepLosses:
    """One update: the largest subnet, then each of ``students``, on ``task``'s targets; gradients summed.

    The default task is in-place distillation: the largest on the labels, the
    students on its soft labels.
    """
    import torch

    task = task or InPlaceDistillation(config)
    optimizer.zero_grad(set_to_none=True)
    targets = task.targets(x, y)
    teacher_logits = _forward(supernet, module, supernet.space.largest(), x, config)
    teacher_loss = task.loss(teacher_logits, targets, y, largest=True)
    teacher_loss.backward()
    targets = task.after_largest(teacher_logits, targets)
    student_total = 0.0
    for subnet in students:
        loss = task.loss(_forward(supernet, module, subnet, x, config), targets, y, largest=False)
        loss.backward()
        student_total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
    optimizer.step()
    return StepLosses(float(teacher_loss.detach()), student_total / max(1, len(students)))


def train_supernet(
    supernet: Supernet,
    module: torch.nn.Module,
    data: ImageData | TextData,
    config: TrainingConfig | None = None,
    *,
    progress: TrainingProgress | None = None,
    task: SandwichTask | None = None,
) -> TrainingResult:
    """Train ``module`` (from ``supernet.build()``) in place on ``data.train``; validate after every epoch.

    ``task`` says what subnets learn (default: in-place distillation on the
    labels). Seeded: the same supernet, data, config and thread count give the same weights.
    """
    import numpy as np
    import torch

    config = config or TrainingConfig()
    progress = progress or TrainingProgress()
    task = task or InPlaceDistillation(config)
    task.check(supernet, module, data)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    space = supernet.space
    smallest, largest = space.smallest(), space.largest()

    steps_per_epoch = math.ceil(len(data.train) / config.batch_size)
    total = config.epochs * steps_per_epoch
    if config.max_steps is not None:
        total = min(total, config.max_steps)
    optimizer = torch.optim.AdamW(_parameter_groups(module, config.weight_decay), lr=config.lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, _warmup_cosine(total, config.warmup_steps)
    )

    if config.channels_last:
        # Depthwise-conv backward on CPU is several times faster in channels-last.
        module.to(memory_format=torch.channels_last)
    progress.start(total, steps_per_epoch)
    reports: list[EpochReport] = []
    step = 0
    began = time.perf_counter()
    try:
        for epoch in range(1, config.epochs + 1):
            if step >= total:
                break
            epoch_began = time.perf_counter()
            module.train()
            teacher_sum = student_sum = 0.0
            epoch_steps = 0
            for x, y in data.train.batches(
                config.batch_size, shuffle=True, seed=config.seed * 1000 + epoch
            ):
                if step >= total:
                    break
                if len(y) < 2:
                    continue  # a lone example cannot be batch-normalised
                students = [smallest] + [space.sample(rng) for _ in range(config.random_subnets)]
                losses = sandwich_step(supernet, module, x, y, students, optimizer, config, task)
                schedule.step()
                step += 1
                epoch_steps += 1
                teacher_sum += losses.teacher
                student_sum += losses.students
                progress.step(step, epoch, losses)
            module.eval()
            report = EpochReport(
                epoch=epoch,
                steps=epoch_steps,
                teacher_loss=teacher_sum / max(1, epoch_steps),
                student_loss=student_sum / max(1, epoch_steps),
                smallest_accuracy=task.score(supernet, module, smallest, data),
                largest_accuracy=task.score(supernet, module, largest, data),
                seconds=time.perf_counter() - epoch_began,
                metric=task.metric,
            )
            reports.append(report)
            progress.epoch(report)
    finally:
        module.to(memory_format=torch.contiguous_format)
        module.eval()
    result = TrainingResult(
        config, tuple(reports), step, time.perf_counter() - began, metric=task.metric
    )
    progress.finish(result)
    return result


def _forward(
    supernet: Supernet,
    module: torch.nn.Module,
    subnet: Subnet,
    x: torch.Tensor,
    config: TrainingConfig,
) -> torch.Tensor:
    import torch

    supernet.set_active(module, subnet)
    x = supernet.adapt_input(x, subnet)
    if config.channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    return module(x)


def _parameter_groups(module: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Decay conv and linear weights only; biases, BN and kernel-transform matrices are left undecayed."""
    decay, keep = [], []
    for name, parameter in module.named_parameters():
        if not parameter.requires_grad:
            continue
        (
            decay
            if parameter.dim() == 4 or (parameter.dim() == 2 and "transform" not in name)
            else keep
        ).append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": keep, "weight_decay": 0.0}]


def _warmup_cosine(total: int, warmup: int) -> Any:
    warmup = min(warmup, max(0, total - 1))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        progress = (step - warmup) / max(1, total - warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return factor
