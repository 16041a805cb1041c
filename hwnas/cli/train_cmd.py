"""``hwnas train``: train a weight-sharing supernet on digits or the user's images and write a checkpoint.

The training itself is :mod:`hwnas.model.training`; this module parses options and draws progress.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from hwnas.model.training import EpochReport, StepLosses, TrainingProgress, TrainingResult


def rich_progress() -> TrainingProgress:
    """A :class:`~hwnas.model.training.TrainingProgress` drawing a rich bar and printing one line per epoch."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from hwnas.model.training import TrainingProgress

    class RichProgress(TrainingProgress):
        def __init__(self) -> None:
            self.bar: Progress | None = None
            self.task: TaskID | None = None
            self.total_epochs = 0

        def start(self, total_steps: int, steps_per_epoch: int) -> None:
            self.total_epochs = -(-total_steps // steps_per_epoch)
            self.bar = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[status]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
                console=Console(),
            )
            self.task = self.bar.add_task("train", total=total_steps, status="")
            self.bar.start()

        def step(self, step: int, epoch: int, losses: StepLosses) -> None:
            assert self.bar is not None and self.task is not None
            self.bar.update(
                self.task,
                completed=step,
                status=f"epoch {epoch}/{self.total_epochs} loss {losses.teacher:.3f} / {losses.students:.3f}",
            )

        def epoch(self, report: EpochReport) -> None:
            assert self.bar is not None
            self.bar.console.print(
                f"epoch {report.epoch}/{self.total_epochs}: loss {report.teacher_loss:.3f} (largest) "
                f"{report.student_loss:.3f} (distilled); validation {report.metric} smallest "
                f"{report.smallest_accuracy:.2%}, largest {report.largest_accuracy:.2%} ({report.seconds:.0f} s)",
                soft_wrap=True,
            )

        def finish(self, result: TrainingResult) -> None:
            if self.bar is not None:
                self.bar.stop()

    return RichProgress()


@click.command()
@click.argument("supernet")
@click.option(
    "--data",
    default=None,
    help="'digits' (default), a folder of images per class, or an .npz with x and y; "
    "for text models 'generated[:N]' (default: 2000 seeded sentences), a .txt (one text per line) or a .tsv (text<TAB>label).",
)
@click.option(
    "--from-pretrained",
    "pretrained_source",
    default=None,
    metavar="MODEL",
    help="Build SUPERNET around a pretrained model and fine-tune it (InstaTune): elastic-bert takes "
    "all-MiniLM-L6-v2 or a Hugging Face BERT folder, elastic-cnn FILE.py:NAME or package.module:NAME.",
)
@click.option(
    "--pretrained-weights",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="State-dict file to load into the --from-pretrained module first (elastic-cnn).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=10, show_default=True)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="Checkpoint file to write.",
)
@click.option(
    "--preset", default=None, help="Supernet preset (default: the supernet's own, e.g. tiny)."
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a supernet setting (repeatable).",
)
@click.option("--batch-size", type=click.IntRange(min=2), default=64, show_default=True)
@click.option(
    "--lr",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Peak AdamW learning rate (default 0.004; with --from-pretrained the wrapper's, e.g. 1e-4 for BERTs).",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seeds weights, subnet sampling, shuffling and the data split.",
)
@click.option(
    "--random-subnets",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="k random subnets per step (sandwich rule).",
)
@click.option(
    "--max-steps",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many steps (quick checks).",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="torch CPU threads (default: torch's).",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the result as JSON instead of a progress bar."
)
def train(
    supernet: str,
    data: str | None,
    pretrained_source: str | None,
    pretrained_weights: Path | None,
    epochs: int,
    out: Path,
    preset: str | None,
    settings: tuple[str, ...],
    batch_size: int,
    lr: float | None,
    seed: int,
    random_subnets: int,
    max_steps: int | None,
    threads: int | None,
    as_json: bool,
) -> None:
    """Train SUPERNET with the sandwich rule and in-place distillation; write a checkpoint to --out.

    Each step trains the largest subnet on the labels and the smallest plus
    k random subnets on its soft labels. After every epoch the smallest and
    largest subnets are scored on the validation split (BN recalibrated).

    With --from-pretrained the supernet is built around a pretrained model
    (its largest subnet computes that model), sliced by importance, and every
    subnet is distilled from the frozen pretrained model; an encoder without
    labels is scored by embedding fidelity (mean cosine similarity).
    """
    import dataclasses

    import torch

    from hwnas.cli.options import parse_pairs
    from hwnas.cli.output import print_json
    from hwnas.errors import ConfigError
    from hwnas.model.checkpoint import check_writable, checkpoint_sha256, save_checkpoint
    from hwnas.model.datasets import load_data
    from hwnas.model.training import TrainingConfig, TrainingProgress, train_supernet
    from hwnas.registry import supernet_class

    config = TrainingConfig(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr or 0.004,
        seed=seed,
        random_subnets=random_subnets,
        max_steps=max_steps,
    )
    if threads is not None:
        torch.set_num_threads(threads)
    check_writable(out)
    overrides = parse_pairs(settings, example="in_channels=3", placeholder="FIELD")
    progress = TrainingProgress() if as_json else rich_progress()
    pretrained: dict[str, Any] = {}
    if pretrained_source is not None:
        from hwnas.model.pretrained import finetune_pretrained, load_pretrained

        if preset is not None:
            raise ConfigError(
                "--preset does not apply with --from-pretrained: the pretrained model fixes the architecture",
                hint="choose the elastic choices with --set (e.g. --set layers=4,5,6)",
            )
        wrapped = load_pretrained(
            supernet,
            pretrained_source,
            weights=str(pretrained_weights) if pretrained_weights else None,
            overrides=overrides,
        )
        if not as_json:
            click.echo(
                f"{wrapped.supernet.name} around {pretrained_source}: space of "
                f"{wrapped.supernet.space.size():.3g} subnets; ordering by importance, then fine-tuning"
            )
        if lr is None:
            config = dataclasses.replace(config, lr=wrapped.lr)
        tuned = finetune_pretrained(wrapped, data, config, overrides=overrides, progress=progress)
        model, module, images, result = (
            tuned.pretrained.supernet,
            tuned.pretrained.module,
            tuned.data,
            tuned.result,
        )
        pretrained = tuned.summary
    else:
        if pretrained_weights is not None:
            raise ConfigError("--pretrained-weights needs --from-pretrained")
        model = supernet_class(supernet).configure(preset, overrides)
        images = load_data(data or "digits", seed=seed)
        torch.manual_seed(seed)
        module = model.build()
        if not as_json:
            click.echo(
                f"{model.name} ({model.preset}), space of {model.space.size():.3g} subnets; data {images.summary()}"
            )
        result = train_supernet(model, module, images, config, progress=progress)
    metadata = save_checkpoint(
        out, model, module, data=images, result=result, pretrained=pretrained
    )
    summary: dict[str, Any] = {
        "checkpoint": str(out),
        "sha256": checkpoint_sha256(out),
        "bytes": out.stat().st_size,
        "supernet": metadata.arguments,
        "metric": result.metric,
        "smallest_accuracy": metadata.smallest_accuracy,
        "largest_accuracy": metadata.largest_accuracy,
        "steps": result.steps,
        "seconds": round(result.seconds, 2),
    }
    if pretrained:
        summary["pretrained"] = {
            k: pretrained[k]
            for k in ("source", "task", "largest_vs_pretrained_max_abs_diff", "fidelity")
            if k in pretrained
        }
    if as_json:
        print_json(summary)
        return
    if pretrained.get("largest_vs_pretrained_max_abs_diff") is not None:
        click.echo(
            f"largest subnet vs the pretrained model before fine-tuning: max abs difference "
            f"{pretrained['largest_vs_pretrained_max_abs_diff']:.3g}"
        )
    click.echo(
        f"wrote {out} ({summary['bytes'] / 1e6:.2f} MB, sha256 {summary['sha256'][:12]}) after {result.steps} steps "
        f"in {result.seconds:.0f} s: {result.metric} smallest {result.smallest_accuracy:.2%}, "
        f"largest {result.largest_accuracy:.2%}"
    )
