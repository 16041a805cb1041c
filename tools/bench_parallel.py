"""Evaluations per hour with 1 and 2 workers, Ray's overhead, and whether parallel work disturbs timing.

Each mode evaluates the same fixed subnets of the embedded default (accuracy
with BN recalibration, latency on the target) with a fresh measurement cache,
through hwnas's own evaluator and executors, and prints wall time, the
driver's CPU time, evaluations per hour and the ratio to one worker. The
timing check compares each subnet's median latency measured with two workers
busy (one compiling or scoring while the other times) against two quiet
single-worker runs, whose difference is the measurement's own noise.

    python tools/bench_parallel.py --subnets 16 [--farm] [--ray]
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def evaluate(
    target: str, executor: str, subnets: list[Any], warmup: list[Any], repeats: int
) -> dict[str, Any]:
    """Evaluate ``subnets`` on ``target`` through ``executor`` with a fresh cache; figures and latencies.

    ``warmup`` (other subnets) goes first through the same executor and is timed
    apart: it pays each worker's start (processes, imports, the compile and
    measurement workers), which a search pays once, not per evaluation.
    """
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.model.loader import load_supernet
    from hwnas.search_core.evaluator import Evaluator
    from hwnas.search_core.executor_spec import make_executor
    from hwnas.search_core.objectives import parse_objectives
    from hwnas.search_core.subnet_objectives import supernet_providers

    with tempfile.TemporaryDirectory(prefix="hwnas-bench-parallel-") as cache:
        os.environ["HWNAS_CACHE_DIR"] = cache  # nothing measured before counts
        loaded = load_supernet()
        protocol = MeasurementProtocol(repeats=repeats)
        providers, _ = supernet_providers(loaded, ["accuracy", "latency"], target, protocol)
        evaluator = Evaluator(providers, parse_objectives("accuracy,latency"))
        runner = make_executor(executor)
        start = time.perf_counter()
        try:
            list(evaluator.evaluate(warmup, runner))
            startup = time.perf_counter() - start
            cpu0, wall0 = _cpu_seconds(), time.perf_counter()
            results = list(evaluator.evaluate(subnets, runner))
            wall = time.perf_counter() - wall0
            described = runner.describe()
        finally:
            runner.close()  # pool workers are reaped here, so their CPU time counts below
        cpu = _cpu_seconds() - cpu0
    failed = [e.error for e in results if not e.ok]
    return {
        "executor": executor,
        "described": described,
        "startup_s": startup,
        "wall_s": wall,
        "driver_cpu_s": cpu,
        "per_eval_s": wall / len(subnets),
        "evals_per_hour": 3600 * len(subnets) / wall,
        "failed": failed,
        "latency_ms": {e.key: e.values.get("latency") for e in results if e.ok},
    }


def _cpu_seconds() -> float:
    me, children = (
        resource.getrusage(resource.RUSAGE_SELF),
        resource.getrusage(resource.RUSAGE_CHILDREN),
    )
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def relative_differences(a: dict[str, float], b: dict[str, float]) -> list[float]:
    """|a/b - 1| per subnet both measured."""
    return [abs(a[k] / b[k] - 1) for k in a if k in b and b[k]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subnets", type=int, default=16, help="subnets per mode (default 16)")
    parser.add_argument("--repeats", type=int, default=10, help="timed samples per latency")
    parser.add_argument("--target", default="onnxruntime:cpu?threads=1")
    parser.add_argument("--ray", action="store_true", help="also a local 2-worker Ray cluster")
    parser.add_argument("--farm", action="store_true", help="also the emulated 2-board farm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from hwnas.model.loader import load_supernet

    space = load_supernet().supernet.space
    unique = list(
        {
            s.key: s
            for s in (space.sample(args.seed * 1000 + i) for i in range(args.subnets * 2 + 8))
        }.values()
    )
    subnets, warmup = unique[: args.subnets], unique[args.subnets : args.subnets + 2]
    print(f"machine: {cpu_model()}, {len(os.sched_getaffinity(0))} usable cores, load average "
          f"{os.getloadavg()[0]:.2f} at start; {len(subnets)} subnets of the embedded default, "
          f"{args.repeats} timed samples each")  # fmt: skip

    runs: list[tuple[str, str, dict[str, Any]]] = []
    modes = [
        ("quiet, 1 worker (a)", args.target, "inprocess"),
        ("2 pinned workers", args.target, "process:2"),
        ("quiet, 1 worker (b)", args.target, "inprocess"),
    ]
    if args.ray:
        modes.append(("Ray, 2 local actors", args.target, "ray:2"))
    if args.farm:
        modes += [
            ("farm, 1 worker", "arm/rasp4-emulated", "inprocess"),
            ("farm, 2 workers", "arm/rasp4-emulated", "process:2"),
        ]
    for label, target, executor in modes:
        result = evaluate(target, executor, subnets, warmup, args.repeats)
        runs.append((label, target, result))
        print(f"  {label:22s} start-up (2 warm-up evaluations) {result['startup_s']:5.1f} s; "
              f"{result['wall_s']:7.1f} s wall, {result['driver_cpu_s']:6.1f} s CPU "
              f"(this process + reaped workers; not Ray's), {result['evals_per_hour']:7.0f} evals/h"
              + (f", {len(result['failed'])} failed: {result['failed'][0]}" if result["failed"] else ""),
              flush=True)  # fmt: skip

    base: dict[str, dict[str, Any]] = {}  # per target, the faster single-worker run (conservative)
    for label, t, r in runs:
        if label.startswith(("quiet, 1 worker", "farm, 1")):
            if t not in base or r["evals_per_hour"] > base[t]["evals_per_hour"]:
                base[t] = r
    print(
        "\n| mode | target | start-up s | wall s | driver+children CPU s | s / evaluation | evals / hour | vs the faster 1-worker run |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for label, target, r in runs:
        ratio = (
            r["evals_per_hour"] / base[target]["evals_per_hour"] if target in base else float("nan")
        )
        print(f"| {label} | `{target}` | {r['startup_s']:.1f} | {r['wall_s']:.1f} | {r['driver_cpu_s']:.1f} | "
              f"{r['per_eval_s']:.2f} | {r['evals_per_hour']:.0f} | {ratio:.2f}x |")  # fmt: skip

    quiet_a = runs[0][2]["latency_ms"]
    busy = runs[1][2]["latency_ms"]
    quiet_b = runs[2][2]["latency_ms"]
    noise = relative_differences(quiet_a, quiet_b)
    overlap = relative_differences(
        busy, {k: (quiet_a[k] + quiet_b[k]) / 2 for k in quiet_a if k in quiet_b}
    )
    print("\nTiming with two busy workers vs quiet (relative difference of per-subnet medians):")
    print(
        f"  quiet run a vs quiet run b (the noise): median {statistics.median(noise):.1%}, "
        f"max {max(noise):.1%}"
    )
    print(
        f"  2 workers vs mean of the quiet runs:     median {statistics.median(overlap):.1%}, "
        f"max {max(overlap):.1%}"
    )
    print(f"  load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
