"""Weight-sharing supernet training: the sandwich rule with in-place distillation, as BigNAS and Once-for-All do.

Each step trains the largest subnet on the labels, then the smallest and k random
subnets on the largest's soft labels, accumulating gradients before one update.
Data loading is :mod:`hwnas.model.datasets`; scoring subnets is :mod:`hwnas.model.accuracy`.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError

if TYPE_CHECKING:
    import torch

    from hwnas.model.datasets import ImageData
    from hwnas.model.search_space import Subnet
    from hwnas.model.supernet import Supernet


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
    """One epoch: mean losses, validation accuracy of the smallest and largest subnet (BN recalibrated)."""

    epoch: int
    steps: int
    teacher_loss: float
    student_loss: float
    smallest_accuracy: float
    largest_accuracy: float
    seconds: float


@dataclass(frozen=True)
class TrainingResult:
    """A finished training run: its config, every epoch, total steps and wall time."""

    config: TrainingConfig
    epochs: tuple[EpochReport, ...]
    steps: int
    seconds: float

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


def sandwich_step(
    supernet: Supernet,
    module: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    students: list[Subnet],
    optimizer: torch.optim.Optimizer,
    config: TrainingConfig,
) -> StepLosses:
    """One update: largest on labels, each of ``students`` on the largest's soft labels; gradients summed."""
    import torch
    import torch.nn.functional as F

    optimizer.zero_grad(set_to_none=True)
    teacher_logits = _forward(supernet, module, supernet.space.largest(), x, config)
    teacher_loss = F.cross_entropy(teacher_logits, y, label_smoothing=config.label_smoothing)
    teacher_loss.backward()
    soft_labels = F.softmax(teacher_logits.detach(), dim=1)
    student_total = 0.0
    for subnet in students:
        logits = _forward(supernet, module, subnet, x, config)
        loss = config.distill_weight * soft_cross_entropy(logits, soft_labels)
        if config.distill_weight < 1.0:
            loss = loss + (1.0 - config.distill_weight) * F.cross_entropy(
                logits, y, label_smoothing=config.label_smoothing
            )
        loss.backward()
        student_total += float(loss.detach())
    torch.nn.utils.clip_grad_norm_(module.parameters(), config.grad_clip)
    optimizer.step()
    return StepLosses(float(teacher_loss.detach()), student_total / max(1, len(students)))


def train_supernet(
    supernet: Supernet,
    module: torch.nn.Module,
    data: ImageData,
    config: TrainingConfig | None = None,
    *,
    progress: TrainingProgress | None = None,
) -> TrainingResult:
    """Train ``module`` (from ``supernet.build()``) in place on ``data.train``; validate after every epoch.

    Seeded: the same supernet, data, config and thread count give the same weights.
    """
    import numpy as np
    import torch

    from hwnas.model.accuracy import check_data_fits, subnet_accuracy

    config = config or TrainingConfig()
    progress = progress or TrainingProgress()
    check_data_fits(supernet, module, data)
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
                losses = sandwich_step(supernet, module, x, y, students, optimizer, config)
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
                smallest_accuracy=subnet_accuracy(supernet, module, smallest, data),
                largest_accuracy=subnet_accuracy(supernet, module, largest, data),
                seconds=time.perf_counter() - epoch_began,
            )
            reports.append(report)
            progress.epoch(report)
    finally:
        module.to(memory_format=torch.contiguous_format)
        module.eval()
    result = TrainingResult(config, tuple(reports), step, time.perf_counter() - began)
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
