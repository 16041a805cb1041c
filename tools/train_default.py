#!/usr/bin/env python3
"""Reproduce hwnas's embedded default supernet: tiny ``ofa-mbv3`` trained on scikit-learn's digits.

Writes ``hwnas/data/default_supernet.pt`` (or ``--out``), prints per-epoch and final
accuracies, training time, file size and hashes, and whether the weights equal those
of the checkpoint it replaces. Seeded and single-threaded, so a rerun gives the same
weights on the same torch build. Exits 1 if the result misses the shipped figures
(largest subnet >= 95% validation accuracy, smallest at least 2 points lower).

    python tools/train_default.py [--out PATH] [--epochs N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = 0
EPOCHS = 12
THREADS = 1  # pinned: thread count changes float summation order, hence the weights
MIN_LARGEST = 0.95
MIN_GAP = 0.02


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    parser.add_argument("--out", type=Path, default=ROOT / "hwnas" / "data" / "default_supernet.pt")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    args = parser.parse_args(argv)

    import torch

    from hwnas.cli.train_cmd import rich_progress
    from hwnas.model.checkpoint import checkpoint_sha256, load_checkpoint, save_checkpoint
    from hwnas.model.datasets import load_data
    from hwnas.model.default_model import (
        DEFAULT_DATA,
        DEFAULT_PRESET,
        DEFAULT_SETTINGS,
        DEFAULT_SUPERNET,
    )
    from hwnas.model.training import TrainingConfig, train_supernet
    from hwnas.registry import supernet_class

    torch.set_num_threads(THREADS)
    previous = None
    if args.out.is_file():
        previous = load_checkpoint(args.out)[2].weights
    supernet = supernet_class(DEFAULT_SUPERNET).configure(DEFAULT_PRESET, DEFAULT_SETTINGS)
    data = load_data(DEFAULT_DATA, seed=SEED)
    torch.manual_seed(SEED)
    module = supernet.build()
    config = TrainingConfig(epochs=args.epochs, seed=SEED)
    print(f"{supernet.name} ({supernet.preset}) on {data.summary()}; {config}")
    result = train_supernet(supernet, module, data, config, progress=rich_progress())
    metadata = save_checkpoint(args.out, supernet, module, data=data, result=result)
    size = args.out.stat().st_size
    print(
        f"training time     {result.seconds:.1f} s ({result.steps} steps, {THREADS} thread, torch {torch.__version__})"
    )
    print(f"smallest accuracy {result.smallest_accuracy:.4f}")
    print(f"largest accuracy  {result.largest_accuracy:.4f}")
    print(f"checkpoint        {args.out} ({size / 1e6:.2f} MB)")
    print(f"file sha256       {checkpoint_sha256(args.out)}")
    print(f"weights digest    {metadata.weights}")
    if previous is not None:
        print(
            f"same weights as the checkpoint replaced: {'yes' if previous == metadata.weights else 'no, was ' + previous}"
        )
    ok = (
        result.largest_accuracy >= MIN_LARGEST
        and result.smallest_accuracy <= result.largest_accuracy - MIN_GAP
    )
    if not ok:
        print(
            f"FAILED: need largest >= {MIN_LARGEST} and smallest at least {MIN_GAP} below it",
            file=sys.stderr,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
