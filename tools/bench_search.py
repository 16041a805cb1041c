"""Benchmark of the search core on NAS-Bench-201: hypervolume per real evaluation, predictors against each table's noise, overhead.

Usage: .venv/bin/python tools/bench_search.py [--quick] [--seeds 10] [--budget 200]
       [--parts curves,predictors,surrogate,overhead] [--problems full-raspi4,...] [--json out.json]
Prints the markdown tables of docs/PERFORMANCE.md's "Search on NAS-Bench-201" section.

Problems: the full 15,625-cell space (CIFAR-10 accuracy from the table where known,
else the documented surrogate of hwnas.search_core.nb201_surrogate) against Raspberry Pi 4
latency, Pixel 3 latency, or both (three objectives); and the 725 cells with a known
accuracy against Raspberry Pi 4 latency. Hypervolume is normalised in the "median box"
(each objective from its best value over the problem's cells to the median one) and
divided by the exhaustive front's.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import hwnas
from hwnas.model.search_space import Gene, SearchSpace
from hwnas.registry import predictor_class, strategy_class
from hwnas.search_core import nb201, nb201_cell
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.nb201_statistics import NB201Statistics
from hwnas.search_core.nb201_surrogate import AccuracySurrogate
from hwnas.search_core.objectives import (
    Objective,
    hypervolume,
    normalisation_bounds,
    pareto_mask,
)

CHECKPOINTS = (20, 50, 100, 200)
LEVELS = (0.95, 0.99)
PROBLEMS = ("full-raspi4", "full-pixel3", "full-3obj", "known-raspi4")
# (label, strategy, uses free statistics)
STRATEGIES = (
    ("random", "random", False),
    ("nsga2", "nsga2", False),
    ("evolution", "evolution", False),
    ("linas (black box)", "linas", False),
    ("linas + free statistics", "linas", True),
)


@dataclass
class Problem:
    name: str
    space: SearchSpace
    provider: nb201.NB201Provider
    objectives: tuple[Objective, ...]
    candidates: list[Any] | None
    statistics: NB201Statistics
    best: float
    cells: int


def make_problem(name: str) -> Problem:
    tables = nb201.NB201Tables.load()
    space = nb201.search_space()
    scope, _, device = name.partition("-")
    if scope == "full":
        tables = tables.complete()
    names = (
        ["accuracy", "latency@raspi4", "latency@pixel3"]
        if device == "3obj"
        else ["accuracy", "latency"]
    )
    latency = nb201.latency_metrics(names, None if device == "3obj" else device)
    cells = tables.candidates(space)
    objectives = tables.objectives(names, cells, None if device == "3obj" else device)
    provider = nb201.NB201Provider(tables, latency)
    F = np.array(
        [[o.minimised(provider.measure(s).values[o.name]) for o in objectives] for s in cells]
    )
    lower, upper = normalisation_bounds(objectives, F)
    return Problem(
        name=name,
        space=space,
        provider=provider,
        objectives=objectives,
        candidates=None if scope == "full" else cells,
        statistics=NB201Statistics(tables, luts=latency),
        best=hypervolume(F[pareto_mask(F)], lower, upper),
        cells=len(cells),
    )


# -- hypervolume curves ------------------------------------------------------------


def run_curves(
    problem: Problem,
    seeds: int,
    budget: int,
    batch_size: int,
    strategies: Sequence[tuple[str, str, bool]],
) -> dict[str, dict[str, Any]]:
    """Per strategy: a seeds x budget array of hypervolume / exhaustive hypervolume, and time per run."""
    results = {}
    for label, strategy, with_statistics in strategies:
        runs, wall, cpu = [], [], []
        for seed in range(seeds):
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            result = hwnas.search(
                problem.space,
                problem.provider,
                problem.objectives,
                strategy=strategy,
                budget=budget,
                candidates=problem.candidates,
                statistics=problem.statistics if with_statistics else None,
                seed=seed,
                batch_size=batch_size,
            )
            wall.append(time.perf_counter() - start_wall)
            cpu.append(time.process_time() - start_cpu)
            runs.append(np.array(result.hypervolume) / problem.best)
        results[label] = {"curves": np.array(runs), "wall": wall, "cpu": cpu}
    return results


def evaluations_to(curves: np.ndarray, level: float) -> list[int | None]:
    """Per seed, the first evaluation count whose hypervolume reaches ``level`` of the best (None: never)."""
    return [
        int(np.argmax(run >= level - 1e-12)) + 1 if np.any(run >= level - 1e-12) else None
        for run in curves
    ]


def _reached(counts: list[int | None]) -> str:
    reached = [c for c in counts if c is not None]
    if not reached:
        return f"never (0/{len(counts)})"
    mean = f"{np.mean(reached):.0f} (median {np.median(reached):.0f})"
    return mean if len(reached) == len(counts) else f"{mean}, {len(reached)}/{len(counts)} runs"


def curve_table(results: dict[str, dict[str, Any]], budget: int) -> str:
    checkpoints = [n for n in CHECKPOINTS if n <= budget]
    header = (
        ["strategy"]
        + [f"HV@{n}" for n in checkpoints]
        + [f"evals to {int(100 * lv)}%" for lv in LEVELS]
        + ["s per run (CPU s)"]
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, result in results.items():
        runs = result["curves"]
        mean = runs.mean(axis=0)
        cells = [label] + [f"{mean[n - 1]:.3f}" for n in checkpoints]
        cells += [_reached(evaluations_to(runs, level)) for level in LEVELS]
        cells.append(f"{np.median(result['wall']):.2f} ({np.median(result['cpu']):.2f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- predictors against the tables' own noise -------------------------------------------


def predictor_table(device: str, sizes: Sequence[int], seeds: int) -> str:
    """Share within ±10 % on held-out cells, fitting on 20/100/500 random cells of one device's table."""
    tables = nb201.NB201Tables.load()
    space = nb201.search_space()
    archs = sorted(tables.latency[device])
    cells = [nb201.ops_from_arch_string(a) for a in archs]
    subnets = [nb201.subnet_from_arch_string(space, a) for a in archs]
    latency = np.array([tables.latency[device][a] for a in archs])
    ceiling = nb201_cell.repeatability(cells, latency)
    statistics = NB201Statistics(tables, luts={"latency": device})
    stats = statistics.compute(subnets)
    op_counts = np.array([[sum(op == o for op in ops) for o in nb201_cell.OPS] for ops in cells])
    from hwnas_plugins.strategies.encoding import EncodingTools
    from hwnas_plugins.strategies.linas_models import statistic_features

    encoded = np.stack([space.encode(s) for s in subnets])
    genes = EncodingTools(space).features(encoded)
    structure = np.hstack([genes, statistic_features(stats[:, :-1])])
    kernels = [nb201.kernel_keys(s) for s in subnets]
    lut_table = statistics.kernel_tables["lut_latency"]
    # The LUT timed these networks; no predictor is tested on them.
    references = {
        nb201.arch_string(space.subnet({g: "skip_connect" for g in nb201.GENES} | {gene: op}))
        for gene in nb201.GENES
        for op in nb201_cell.OPS
    }
    testable = np.array([a not in references for a in archs])
    structure_only = statistic_features(stats[:, :-1])
    rows = [
        ("lstsq", "5 op counts (the baseline)", op_counts),
        *(
            (name, "structure", structure_only)
            for name in ("lstsq", "lad", "ridge", "svr", "mlp", "gbdt")
        ),
        ("ridge", "genes + structure", structure),
        ("gbdt", "genes + structure", structure),
        ("ridge", "genes one-hot only", genes),
        ("kernel-lut", "26-network LUT, live edges", None),
    ]
    lines = [
        f"Repeatability of the {device} table: {100 * ceiling.vs_group_median:.1f}% of cells within "
        f"±10% of the median of the other cells running the same network "
        f"({ceiling.cells} cells in {ceiling.groups} groups); "
        f"{100 * ceiling.pairs:.1f}% of such pairs within ±10% of each other.",
        "",
        "| predictor | features | "
        + " | ".join(f"within ±10% @{n}" for n in sizes)
        + " | Kendall tau @100 | target chosen @100 | fit s @100 |",
        "|---|---|" + "---|" * (len(sizes) + 3),
    ]
    for name, label, X in rows:
        shares: dict[int, list[float]] = {n: [] for n in sizes}
        taus, targets, fits = [], [], []
        for n in sizes:
            for seed in range(seeds):
                order = np.random.default_rng(seed).permutation(np.flatnonzero(testable))
                train, test = order[:n], order[n:]
                start = time.process_time()
                if X is None:
                    cls = predictor_class(name)
                    predictor = cls(table=lut_table).fit(
                        [kernels[i] for i in train], latency[train]
                    )
                    quality = predictor.quality([kernels[i] for i in test], latency[test])
                else:
                    predictor = predictor_class(name)().fit(X[train], latency[train])
                    quality = predictor.quality(X[test], latency[test])
                shares[n].append(quality.within_10pct)
                if n == 100:
                    fits.append(time.process_time() - start)
                    taus.append(quality.kendall_tau)
                    targets.append(predictor.target)
        cells_ = [f"{100 * np.mean(shares[n]):.1f}%" for n in sizes]
        chosen = ", ".join(f"{t} {targets.count(t)}/{len(targets)}" for t in sorted(set(targets)))
        lines.append(
            f"| {name} | {label} | "
            + " | ".join(cells_)
            + f" | {np.mean(taus):.3f} | {chosen} | {np.mean(fits):.3f} |"
        )
    return "\n".join(lines)


def surrogate_quality() -> str:
    """The accuracy surrogate, leaving each known cell out (and every cell training the same network)."""
    from scipy.stats import kendalltau

    tables = nb201.NB201Tables.load()
    known = {nb201.ops_from_arch_string(a): v for a, v in tables.accuracy.items()}
    surrogate = AccuracySurrogate(known)
    cells = [c for c in known if nb201_cell.connected(c)]
    predicted = np.array([surrogate.nearest(c, exclude_form=True) for c in cells])
    actual = np.array([known[c] for c in cells])
    tau = kendalltau(predicted, actual).statistic
    complete = tables.complete()
    return (
        f"Accuracy surrogate, each of the {len(cells)} connected known cells left out with every "
        f"cell training the same network: Kendall tau {tau:.3f}, mean absolute error "
        f"{100 * np.mean(np.abs(predicted - actual)):.2f} points. In the full space "
        f"{complete.surrogate} of {len(complete.accuracy)} accuracies come from the surrogate "
        f"({sum(not nb201_cell.connected(nb201.ops_from_arch_string(a)) for a in complete.accuracy)} "
        "cells without an input-output path at chance, 10%)."
    )


# -- LINAS overhead -----------------------------------------------------------------------


def linas_overhead(batch_size: int, evaluations: int) -> str:
    """Seconds LINAS spends choosing (fit + scoring + batch choice) per ``evaluations`` evaluations.

    The first round also computes the free statistics of every candidate (once per run).
    """
    lines = [
        "| problem | candidates scored | batch | rounds | first round s | later rounds s (mean, max) "
        "| s per 200 evaluations (all rounds) |",
        "|---|---|---|---|---|---|---|",
    ]
    full = make_problem("full-raspi4")
    big = SearchSpace("wide", [Gene(f"g{i}", tuple(range(5))) for i in range(12)])  # 244M subnets
    weights = np.random.default_rng(0).random((12, 5))

    def wide_evaluate(subnet: Any) -> dict[str, float]:
        cost = float(sum(weights[i, subnet[f"g{i}"]] for i in range(12)))
        return {"accuracy": 1 - 1 / (1 + cost), "latency": 1 + cost * cost}

    setups = [
        (
            "NB201 full, free statistics",
            full.space,
            lambda s: dict(full.provider.measure(s).values),
            full.objectives,
            full.statistics,
            "all 15,625",
        ),
        (
            "NB201 full, black box",
            full.space,
            lambda s: dict(full.provider.measure(s).values),
            full.objectives,
            None,
            "all 15,625",
        ),
        (
            "12 genes x 5 choices",
            big,
            wide_evaluate,
            (Objective("accuracy", "max"), Objective("latency", "min", "ms")),
            None,
            "inner NSGA-II 50 x 30",
        ),
    ]
    cls = strategy_class("linas")
    for label, space, evaluate, objectives, statistics, scored in setups:
        strategy = cls(space, objectives, seed=0, statistics=statistics)
        times = []
        while len(strategy.history) < evaluations:
            proposals = strategy.ask(batch_size)
            times.append(strategy.last_round_seconds)
            strategy.tell([Evaluation(s, values=evaluate(s)) for s in proposals])
        per_200 = sum(times) * 200 / len(strategy.history)
        lines.append(
            f"| {label} | {scored} | {batch_size} | {len(times)} | {times[0]:.3f} "
            f"| {np.mean(times[1:]):.3f}, {np.max(times[1:]):.3f} | {per_200:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 seeds, budget 100: for iterating")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--problems", default=",".join(PROBLEMS))
    parser.add_argument(
        "--strategies", default="", help="comma list of strategy labels to run (default: all)"
    )
    parser.add_argument("--parts", default="curves,predictors,surrogate,overhead")
    parser.add_argument("--json", help="also write raw curves here")
    args = parser.parse_args()
    seeds, budget = (3, 100) if args.quick else (args.seeds, args.budget)
    parts = set(args.parts.split(","))
    wanted = [s for s in STRATEGIES if not args.strategies or s[0] in args.strategies.split(",")]
    raw: dict[str, Any] = {}
    if "curves" in parts:
        for name in args.problems.split(","):
            problem = make_problem(name)
            start = time.perf_counter()
            results = run_curves(problem, seeds, budget, args.batch_size, wanted)
            print(
                f"\n### {name}: {problem.cells} cells, objectives "
                f"{', '.join(o.name for o in problem.objectives)} ({seeds} seeds, batch "
                f"{args.batch_size}, {time.perf_counter() - start:.0f} s)\n"
            )
            print(curve_table(results, budget), flush=True)
            raw[name] = {label: r["curves"].tolist() for label, r in results.items()}
    if "predictors" in parts:
        for device in ("raspi4", "pixel3"):
            print(f"\n### Latency predictors, {device}\n")
            print(predictor_table(device, (20, 100, 500), seeds=2 if args.quick else 5), flush=True)
    if "surrogate" in parts:
        print("\n" + surrogate_quality())
    if "overhead" in parts:
        print("\n### LINAS overhead (choosing only; evaluations excluded)\n")
        print(linas_overhead(batch_size=args.batch_size, evaluations=100 if args.quick else 200))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f)


if __name__ == "__main__":
    main()
