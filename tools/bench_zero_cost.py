"""Zero-cost accuracy proxies against measured subnet accuracy, and whether they help LINAS.

Usage: .venv/bin/python tools/bench_zero_cost.py [--subnets 100] [--resnet CHECKPOINT] [--seeds 10]
Prints the tables of docs/PERFORMANCE.md's "Zero-cost proxies" section. Accuracies are
validation top-1 after BN recalibration (what a search measures); proxies use one
minibatch of 64 calibration images and the supernet's weights.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np


def score_subnets(loaded: Any, count: int, seed: int = 0) -> dict[str, Any]:
    """Accuracy and every proxy for ``count`` random subnets, with CPU seconds per subnet."""
    from hwnas.model.accuracy import SubnetAccuracy
    from hwnas.model.zero_cost import PROXIES, proxy_scores

    data = loaded.data()
    accuracy = SubnetAccuracy(loaded.supernet, loaded.module, data)
    batch = next(iter(data.calibration.batches(64)))
    rng = np.random.default_rng(seed)
    subnets = list(
        {s.key: s for s in (loaded.supernet.space.sample(rng) for _ in range(count))}.values()
    )
    scores, accuracies, proxy_s, accuracy_s = [], [], [], []
    for subnet in subnets:
        start = time.process_time()
        row = proxy_scores(loaded.supernet, loaded.module, subnet, batch)
        proxy_s.append(time.process_time() - start)
        start = time.process_time()
        accuracies.append(accuracy(subnet))
        accuracy_s.append(time.process_time() - start)
        scores.append([row[p] for p in PROXIES])
    return {
        "subnets": subnets,
        "scores": np.array(scores),
        "accuracy": np.array(accuracies),
        "proxy_s": float(np.median(proxy_s)),
        "accuracy_s": float(np.median(accuracy_s)),
    }


def tau_table(name: str, scored: dict[str, Any], fit_on: int = 10, splits: int = 20) -> str:
    from scipy.stats import kendalltau

    from hwnas.model.zero_cost import PROXIES, combined_score, fit_combination

    S, acc = scored["scores"], scored["accuracy"]
    lines = [
        f"{name}: {len(acc)} random subnets, accuracy {100 * acc.min():.1f}-{100 * acc.max():.1f}% "
        f"(median {100 * np.median(acc):.1f}%); CPU s per subnet: all proxies "
        f"{scored['proxy_s']:.2f}, accuracy {scored['accuracy_s']:.2f}.",
        "",
        "| proxy | Kendall tau vs accuracy |",
        "|---|---|",
    ]
    for j, proxy in enumerate(PROXIES):
        lines.append(f"| {proxy} | {kendalltau(S[:, j], acc).statistic:.3f} |")
    taus = []
    for split in range(splits):
        order = np.random.default_rng(split).permutation(len(acc))
        train, test = order[:fit_on], order[fit_on:]
        weights = fit_combination(S[train], acc[train], seed=split)
        taus.append(kendalltau(combined_score(S[test], weights, S[train]), acc[test]).statistic)
    lines.append(
        f"| RoBoT-style combination (weights fitted on {fit_on} measured subnets, tau on the rest, "
        f"mean of {splits} splits) | {np.mean(taus):.3f} (sd {np.std(taus):.3f}) |"
    )
    return "\n".join(lines)


def linas_with_proxies(scored: dict[str, Any], seeds: int, budget: int) -> str:
    """LINAS over the scored subnets (accuracy up, parameters down), with and without the proxies."""
    import hwnas
    from hwnas.model.zero_cost import PROXIES
    from hwnas.search_core.free_statistics import TableStatistics
    from hwnas.search_core.objectives import hypervolume, normalisation_bounds, pareto_mask

    subnets = scored["subnets"]
    values = {
        s.key: {"accuracy": float(a), "params": float(row[0])}
        for s, a, row in zip(subnets, scored["accuracy"], scored["scores"], strict=True)
    }
    statistics = TableStatistics(
        PROXIES, {s.key: row for s, row in zip(subnets, scored["scores"], strict=True)}, "zero-cost"
    )
    acc = np.array([values[s.key]["accuracy"] for s in subnets])
    params = np.array([values[s.key]["params"] for s in subnets])
    # fixed bounds (the range over these subnets) make the runs' hypervolumes comparable
    objectives = (
        hwnas.Objective("accuracy", "max", "fraction", (float(acc.min()), float(acc.max()))),
        hwnas.Objective("params", "min", "count", (float(params.min()), float(params.max()))),
    )
    F = np.column_stack([-acc, params])
    lower, upper = normalisation_bounds(objectives, F)
    best = hypervolume(F[pareto_mask(F)], lower, upper)
    lines = [
        "| strategy | " + " | ".join(f"HV@{n}" for n in (10, 20, 30) if n <= budget) + " |",
        "|---|---|---|---|",
    ]
    for label, strategy, stats in (
        ("random", "random", None),
        ("linas, no proxies", "linas", None),
        ("linas + zero-cost proxies", "linas", statistics),
    ):
        curves = []
        for seed in range(seeds):
            result = hwnas.search(
                scored["space"],
                lambda s: values[s.key],
                objectives,
                strategy=strategy,
                budget=budget,
                candidates=subnets,
                statistics=stats,
                seed=seed,
                batch_size=5,
            )
            curves.append(np.array(result.hypervolume) / best)
        mean = np.mean(curves, axis=0)
        lines.append(
            f"| {label} | "
            + " | ".join(f"{mean[n - 1]:.3f}" for n in (10, 20, 30) if n <= budget)
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subnets", type=int, default=100)
    parser.add_argument(
        "--resnet", help="elastic-resnet checkpoint (default: untrained tiny preset)"
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=30)
    args = parser.parse_args()
    import torch

    import hwnas.registry
    from hwnas.model.loader import load_supernet

    torch.set_num_threads(1)
    hwnas.registry.plugin_host()
    setups = [("embedded default (ofa-mbv3 tiny, trained on digits)", load_supernet())]
    if args.resnet:
        setups.append(
            (
                f"elastic-resnet tiny, {args.resnet}",
                load_supernet("elastic-resnet", checkpoint=args.resnet),
            )
        )
    else:
        setups.append(
            ("elastic-resnet tiny, untrained", load_supernet("elastic-resnet", preset="tiny"))
        )
    for index, (name, loaded) in enumerate(setups):
        scored = score_subnets(loaded, args.subnets)
        scored["space"] = loaded.supernet.space
        print(f"\n### {name}\n")
        print(tau_table(name, scored), flush=True)
        if index == 0:
            print(
                f"\nLINAS over these {len(scored['subnets'])} subnets, {args.seeds} seeds, batches of 5:\n"
            )
            print(linas_with_proxies(scored, args.seeds, args.budget), flush=True)


if __name__ == "__main__":
    main()
