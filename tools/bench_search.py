"""Benchmark of the search core on the NAS-Bench-201 tables: hypervolume per real evaluation, predictors, LINAS overhead.

Usage: .venv/bin/python tools/bench_search.py [--seeds 10] [--budget 500] [--json out.json]
Prints the markdown tables of docs/PERFORMANCE.md's "Search" section.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

import hwnas
from hwnas.model.search_space import Gene, SearchSpace
from hwnas.registry import predictor_class, strategy_class
from hwnas.search_core import nb201
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.objectives import (
    BUILTIN_OBJECTIVES,
    Objective,
    hypervolume,
    normalisation_bounds,
)

STRATEGIES = ("random", "nsga2", "evolution", "linas")
LEVELS = (0.90, 0.95, 0.99)


def _problem(device: str, box: str) -> dict[str, Any]:
    tables = nb201.NB201Tables.load()
    space = nb201.search_space()
    candidates = tables.candidates(space)
    provider = nb201.NB201Provider(tables, device)
    if box == "median":
        objectives = tables.objectives(["accuracy", "latency"], device, candidates)
    else:
        values = np.array(
            [[provider.measure(s).values[m] for m in ("accuracy", "latency")] for s in candidates]
        )
        objectives = tuple(
            BUILTIN_OBJECTIVES[m].with_bounds(float(values[:, j].min()), float(values[:, j].max()))
            for j, m in enumerate(("accuracy", "latency"))
        )
    F = np.array(
        [
            [-provider.measure(s).values["accuracy"], provider.measure(s).values["latency"]]
            for s in candidates
        ]
    )
    lower, upper = normalisation_bounds(objectives, F)
    return {
        "space": space,
        "candidates": candidates,
        "provider": provider,
        "objectives": objectives,
        "best": hypervolume(F, lower, upper),
    }


def hypervolume_curves(
    problem: dict[str, Any], strategies: Sequence[str], seeds: int, budget: int, batch_size: int
) -> dict[str, np.ndarray]:
    """Per strategy, a seeds x budget array of hypervolume / best-known hypervolume."""
    curves = {}
    for name in strategies:
        runs = []
        for seed in range(seeds):
            result = hwnas.search(
                problem["space"],
                problem["provider"],
                problem["objectives"],
                strategy=name,
                budget=budget,
                candidates=problem["candidates"],
                seed=seed,
                batch_size=batch_size,
            )
            runs.append(np.array(result.hypervolume) / problem["best"])
        curves[name] = np.array(runs)
    return curves


def evaluations_to(curves: np.ndarray, level: float) -> list[int | None]:
    """Per seed, the first evaluation count whose hypervolume reaches ``level`` of the best known (None: never)."""
    return [int(np.argmax(run >= level)) + 1 if np.any(run >= level) else None for run in curves]


def _mean_reached(counts: list[int | None], budget: int) -> str:
    reached = [c for c in counts if c is not None]
    if len(reached) < len(counts):
        return f">{budget} ({len(reached)}/{len(counts)} seeds reached)"
    return f"{np.mean(reached):.0f} (median {np.median(reached):.0f})"


def curve_table(curves: dict[str, np.ndarray], budget: int) -> str:
    checkpoints = [n for n in (25, 50, 100, 150, 200, 300, 400, 500, 725) if n <= budget]
    lines = [
        "| strategy | "
        + " | ".join(f"HV@{n}" for n in checkpoints)
        + " | "
        + " | ".join(f"evals to {int(100 * lv)}%" for lv in LEVELS)
        + " |"
    ]
    lines.append("|" + "---|" * (1 + len(checkpoints) + len(LEVELS)))
    for name, runs in curves.items():
        mean = runs.mean(axis=0)
        cells = [f"{mean[n - 1]:.3f}" for n in checkpoints]
        cells += [_mean_reached(evaluations_to(runs, level), budget) for level in LEVELS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def predictor_quality(device: str, train_sizes: Sequence[int], seeds: int) -> str:
    """Held-out quality on the 15,625 latencies (and the 725 accuracies), fitting on a few random architectures."""
    tables = nb201.NB201Tables.load()
    space = nb201.search_space()
    every = [
        nb201.subnet_from_arch_string(space, arch)
        for arch in sorted(tables.latency[nb201.DEVICES[device]])
    ]
    latency = np.array([tables.latency_of(s, device) for s in every])
    features = space.features_matrix(every)
    kernels = [nb201.kernel_keys(s) for s in every]
    candidates = tables.candidates(space)
    accuracy = np.array([tables.accuracy[nb201.arch_string(s)] for s in candidates])
    accuracy_features = space.features_matrix(candidates)
    lines = [
        "| predictor | target | train | Kendall tau | MAPE | within ±10% | fit s |",
        "|---|---|---|---|---|---|---|",
    ]
    for n in train_sizes:
        for name in ("ridge", "svr", "mlp", "gbdt", "kernel-lut"):
            for target in ("latency", "accuracy"):
                if target == "accuracy" and name == "kernel-lut":
                    continue
                rows = []
                for seed in range(seeds):
                    pool = len(every) if target == "latency" else len(candidates)
                    order = np.random.default_rng(seed).permutation(pool)
                    train, test = order[:n], order[n:]
                    start = time.perf_counter()
                    if name == "kernel-lut":
                        cls = predictor_class(name)
                        predictor = cls(
                            cls.settings_class(log_target=True),
                            measure_kernel=nb201.kernel_measurer(tables, device),
                        )
                        predictor.fit([kernels[i] for i in train], latency[train])
                        fit_s = time.perf_counter() - start
                        q = predictor.quality([kernels[i] for i in test], latency[test])
                    else:
                        X, y = (
                            (features, latency)
                            if target == "latency"
                            else (accuracy_features, accuracy)
                        )
                        predictor = (
                            predictor_class(name)
                            .with_log_target(target == "latency")
                            .fit(X[train], y[train])
                        )
                        fit_s = time.perf_counter() - start
                        q = predictor.quality(X[test], y[test])
                    rows.append((q.kendall_tau, q.mape, q.within_10pct, fit_s))
                tau, mape, within, fit_s = np.mean(rows, axis=0)
                label = f"{device} latency" if target == "latency" else "CIFAR-10 accuracy"
                lines.append(
                    f"| {name} | {label} | {n} | {tau:.3f} | {100 * mape:.1f}% | {100 * within:.1f}% | {fit_s:.3f} |"
                )
    return "\n".join(lines)


def linas_overhead(batch_size: int, rounds: int) -> str:
    """Seconds LINAS spends per round (fit + inner search + choice), evaluations excluded.

    The first round also pays one-off imports (scikit-learn, pymoo); it is reported apart.
    """
    lines = [
        "| problem | candidates scored | batch | warm rounds | mean s/round | max s/round | first round s |",
        "|---|---|---|---|---|---|---|",
    ]
    tables = nb201.NB201Tables.load()
    space = nb201.search_space()
    provider = nb201.NB201Provider(tables, "raspi4")
    candidates = tables.candidates(space)
    objectives = tables.objectives(["accuracy", "latency"], "raspi4", candidates)
    big = SearchSpace("wide", [Gene(f"g{i}", tuple(range(5))) for i in range(12)])  # 244M subnets
    weights = np.random.default_rng(0).random((12, 5))

    def wide_evaluate(subnet: Any) -> dict[str, float]:
        cost = float(sum(weights[i, subnet[f"g{i}"]] for i in range(12)))
        return {"accuracy": 1 - 1 / (1 + cost), "latency": 1 + cost * cost}

    setups = [
        (
            "NAS-Bench-201 tables",
            space,
            lambda s: dict(provider.measure(s).values),
            objectives,
            candidates,
            "all 725",
        ),
        (
            "12 genes x 5 choices",
            big,
            wide_evaluate,
            (Objective("accuracy", "max"), Objective("latency", "min", "ms")),
            None,
            "inner NSGA-II, 50 x 30",
        ),
    ]
    cls = strategy_class("linas")
    for label, problem_space, evaluate, objs, pool, scored in setups:
        strategy = cls(problem_space, objs, seed=0, candidates=pool)
        times = []
        while len(times) < rounds + 1:
            proposals = strategy.ask(batch_size)
            if len(strategy.history) >= cls.settings_class().initial_samples:
                times.append(strategy.last_round_seconds)
            strategy.tell([Evaluation(s, values=evaluate(s)) for s in proposals])
        warm = times[1:]
        lines.append(
            f"| {label} | {scored} | {batch_size} | {len(warm)} | {np.mean(warm):.3f} | {np.max(warm):.3f} | {times[0]:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--budget",
        type=int,
        default=725,
        help="725 = the whole candidate pool, so every run ends at 100%%",
    )
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--device", default="raspi4", choices=sorted(nb201.DEVICES))
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    parser.add_argument(
        "--skip", default="", help="comma list of parts to skip: curves,predictors,overhead"
    )
    parser.add_argument("--json", help="also write raw curves here")
    args = parser.parse_args()
    skip = set(args.skip.split(","))
    raw: dict[str, Any] = {}
    if "curves" not in skip:
        for box in ("median", "full"):
            problem = _problem(args.device, box)
            start = time.perf_counter()
            curves = hypervolume_curves(
                problem, args.strategies.split(","), args.seeds, args.budget, args.batch_size
            )
            print(
                f"\n### Hypervolume vs evaluations ({box} box, {args.seeds} seeds, batch {args.batch_size}, {time.perf_counter() - start:.0f} s)\n"
            )
            print(curve_table(curves, args.budget))
            raw[box] = {name: runs.tolist() for name, runs in curves.items()}
    if "predictors" not in skip:
        print("\n### Predictors, held out\n")
        print(predictor_quality(args.device, (50, 100), seeds=3))
    if "overhead" not in skip:
        print("\n### LINAS overhead per round (evaluations excluded)\n")
        print(linas_overhead(batch_size=50, rounds=5))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f)


if __name__ == "__main__":
    main()
