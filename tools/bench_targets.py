#!/usr/bin/env python3
"""Benchmark of hwnas's targets and measurement: latency on torch eager, onnxruntime, TVM untuned and tuned.

For subnets of the built-in ``ofa-mbv3`` supernet and a MobileNetV2-style net:
median latency and CV per target, ratios to onnxruntime, achieved GFLOP/s
against a matmul peak measured here, the cost of compile+measure and of a
cache hit, the CV of repeated medians, and how TVM's tuned latency moves with
the trial budget and with a tuning database shared across subnets. Prints
markdown for docs/PERFORMANCE.md and writes every raw number as JSON.

    python tools/bench_targets.py [--threads 1] [--trials 8,24] [--quick] [--json bench.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

LATENCY_TARGETS = ("torch:cpu", "onnxruntime:cpu", "tvm:llvm")


def mbv2_net() -> Any:
    """MobileNetV2-style: stem + 5 inverted-residual blocks + head, as in the TVM notes' figures (1x3x64x64)."""
    import torch
    from torch import nn

    class InvertedResidual(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
            super().__init__()
            hidden = cin * expand
            self.residual = stride == 1 and cin == cout
            self.body = nn.Sequential(
                nn.Conv2d(cin, hidden, 1, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU6(),
                nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
                nn.BatchNorm2d(hidden),
                nn.ReLU6(),
                nn.Conv2d(hidden, cout, 1, bias=False),
                nn.BatchNorm2d(cout),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.body(x) if self.residual else self.body(x)

    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 2, 1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU6(),
        InvertedResidual(16, 16, 1, 1),
        InvertedResidual(16, 24, 2, 6),
        InvertedResidual(24, 24, 1, 6),
        InvertedResidual(24, 32, 2, 6),
        InvertedResidual(32, 32, 1, 6),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    ).eval()


def build_models(quick: bool) -> dict[str, Any]:
    """name -> GraphIR: a tiny and a small subnet of ofa-mbv3 (tiny preset), the MobileNetV2-style net,
    and (unless quick) a large subnet of the full ofa-mbv3 space."""
    import torch

    from hwnas import registry
    from hwnas.ir import GraphIR

    tiny = registry.supernet_class("ofa-mbv3").configure("tiny", {})
    elastic = tiny.build()
    models = {
        "tiny subnet": GraphIR.from_subnet(tiny, elastic, tiny.space.smallest()),
        "small subnet": GraphIR.from_subnet(tiny, elastic, tiny.space.largest()),
        "mbv2-64": GraphIR.from_module(mbv2_net(), (torch.randn(1, 3, 64, 64),), name="mbv2-64"),
    }
    # two neighbouring subnets, as a search proposes them: one stage deeper, one kernel smaller
    middle = {g.name: g.choices[len(g.choices) // 2] for g in tiny.space}
    neighbour = {**middle, "s3.depth": 4, "s2.b1.kernel": 3}
    for name, config in (("subnet A", middle), ("subnet B", neighbour)):
        models[name] = GraphIR.from_subnet(tiny, elastic, tiny.space.subnet(config))
    if not quick:
        full = registry.supernet_class("ofa-mbv3").configure("full", {})
        models["large subnet"] = GraphIR.from_subnet(full, full.build(), full.space.smallest())
    return models


def matmul_peak(threads: int, n: int = 1024) -> float:
    """GFLOP/s of a float32 n x n matmul with torch on ``threads`` threads (best of 10)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    best = min(_timed(lambda: a @ b) for _ in range(10))
    return 2 * n**3 / best / 1e9


def _timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


class Bench:
    def __init__(self, threads: int, workdir: Path) -> None:
        from hwnas.measurement.isolation import WorkerPool
        from hwnas.measurement.protocol import MeasurementProtocol

        self.threads = threads
        self.workdir = workdir
        self.protocol = MeasurementProtocol(threads=threads)
        self.pool = WorkerPool()
        self.data: dict[str, Any] = {"threads": threads}

    def measurer(self, spec: str, *, cache: Any = None, tag: str = "main") -> Any:
        from hwnas.measurement.measurer import Measurer

        return Measurer(
            spec,
            self.protocol,
            cache=cache,
            artifact_dir=self.workdir / tag / "artifacts",
            pool=self.pool,
        )

    def tuned_spec(self, trials: int, db: str) -> str:
        return f"tvm:llvm?trials={trials}&threads={self.threads}&db={self.workdir / 'db' / db}"

    # -- latency ----------------------------------------------------------------

    def latency(self, models: dict[str, Any], trials: int, tune: set[str]) -> list[dict[str, Any]]:
        rows = []
        for name, ir in models.items():
            specs = list(LATENCY_TARGETS)
            if name in tune:
                specs.append(self.tuned_spec(trials, db=f"latency-{trials}"))
            for spec in specs:
                start = time.perf_counter()
                result = self.measurer(spec).measure_one(ir)
                row = {
                    "model": name,
                    "target": spec.split("&db=")[0],
                    "seconds": time.perf_counter() - start,
                    "macs": ir.macs,
                }
                if hasattr(result, "median_s"):
                    row.update(
                        median_ms=result.median_ms,
                        cv=result.cv,
                        gflops=result.gflops,
                        compile_s=result.compile_s,
                        error=result.max_abs_error,
                    )
                else:
                    row.update(failure=f"{result.kind}: {result.reason}")
                print(
                    f"  {name:13s} {row['target']:40s} {row.get('median_ms', float('nan')):9.4f} ms "
                    f"({row['seconds']:.1f} s)",
                    flush=True,
                )
                rows.append(row)
        return rows

    # -- what measuring costs ------------------------------------------------------

    def costs(self, ir: Any, spec: str = "onnxruntime:cpu") -> dict[str, Any]:
        from hwnas.measurement.cache import MeasurementCache

        warm = self.measurer(spec, tag="warmup")
        warm.measure_one(ir)  # the worker process now exists, its runtime imported
        cache = MeasurementCache(self.workdir / "cost-cache.sqlite")
        fresh = self.measurer(spec, cache=cache, tag="cost")
        start = time.perf_counter()
        first = fresh.measure(ir)
        cold = time.perf_counter() - start
        hits = []
        for _ in range(20):
            start = time.perf_counter()
            assert self.measurer(spec, cache=cache, tag="cost").measure(ir).cached
            hits.append(time.perf_counter() - start)
        return {
            "target": spec,
            "compile_s": first.compile_s,
            "compile_and_measure_s": cold,
            "cache_hit_ms": statistics.median(hits) * 1e3,
            "cache_hit_max_ms": max(hits) * 1e3,
        }

    def repeatability(self, ir: Any, spec: str, runs: int = 5) -> dict[str, Any]:
        m = self.measurer(spec, tag="repeat")
        medians = [m.measure_one(ir).median_s for _ in range(runs)]
        return {
            "target": spec,
            "medians_ms": [x * 1e3 for x in medians],
            "cv_of_medians": statistics.stdev(medians) / statistics.mean(medians),
        }

    # -- tuning ------------------------------------------------------------------------

    def tuning_budget(self, ir: Any, budgets: list[int], ort_ms: float) -> list[dict[str, Any]]:
        rows = []
        for trials in budgets:
            m = self.measurer(
                self.tuned_spec(trials, db=f"budget-{trials}"), tag=f"budget-{trials}"
            )
            result = m.measure_one(ir)
            tuning = m.compile(ir).details.get("tuning", {})
            rows.append(
                {
                    "trials_per_task": trials,
                    "tasks": tuning.get("tasks"),
                    "tuning_s": tuning.get("seconds"),
                    "median_ms": result.median_ms,
                    "ratio_to_ort": result.median_ms / ort_ms,
                }
            )
            print(
                f"  budget {trials}: {result.median_ms:.4f} ms, tuning {tuning.get('seconds')} s",
                flush=True,
            )
        return rows

    def shared_database(self, first: Any, second: Any, trials: int) -> dict[str, Any]:
        """Tune ``second`` from an empty database, and again after ``first`` filled a shared one."""
        alone = (
            self.measurer(self.tuned_spec(trials, "alone"), tag="alone")
            .compile(second)
            .details["tuning"]
        )
        shared = self.tuned_spec(trials, "shared")
        before = self.measurer(shared, tag="shared").compile(first).details["tuning"]
        after = self.measurer(shared, tag="shared").compile(second).details["tuning"]
        return {
            "trials_per_task": trials,
            "first": before,
            "second_alone": alone,
            "second_shared": after,
        }


def markdown(data: dict[str, Any]) -> str:
    lines = [
        f"Threads: {data['threads']}. Matmul peak (torch, float32 1024^3): "
        f"{data['peak_gflops']:.1f} GFLOP/s.",
        "",
    ]
    lines += [
        "| model | MMACs | torch eager | onnxruntime | TVM untuned | TVM tuned | tuned / ort | best GFLOP/s (% peak) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    by_model: dict[str, dict[str, Any]] = {}
    for row in data["latency"]:
        by_model.setdefault(row["model"], {"macs": row["macs"]})[
            row["target"].split("?")[0] + ("+tuned" if "trials=" in row["target"] else "")
        ] = row
    for name, rows in by_model.items():

        def cell(key: str, rows: dict[str, Any] = rows) -> str:
            row = rows.get(key)
            if row is None:
                return "-"
            if "median_ms" not in row:
                return "failed"
            return f"{row['median_ms']:.3f} ms ({row['cv'] * 100:.0f}%)"

        ort = rows.get("onnxruntime:cpu", {}).get("median_ms")
        tuned = rows.get("tvm:llvm+tuned", {}).get("median_ms")
        best = max((r.get("gflops") or 0 for k, r in rows.items() if k != "macs"), default=0)
        lines.append(
            f"| {name} | {rows['macs'] / 1e6:.1f} | {cell('torch:cpu')} | {cell('onnxruntime:cpu')} | "
            f"{cell('tvm:llvm')} | {cell('tvm:llvm+tuned')} | "
            f"{f'{tuned / ort:.2f}' if tuned and ort else '-'} | {best:.2f} ({best / data['peak_gflops'] * 100:.1f}%) |"
        )
    c = data["costs"]
    lines += [
        "",
        f"Cost on {c['target']} (tiny subnet, worker warm): compile {c['compile_s']:.2f} s, "
        f"compile+verify+measure {c['compile_and_measure_s']:.2f} s; cache hit {c['cache_hit_ms']:.2f} ms "
        f"(max {c['cache_hit_max_ms']:.2f} ms).",
    ]
    for r in data["repeatability"]:
        lines.append(
            f"Repeated medians on {r['target']}: CV {r['cv_of_medians'] * 100:.2f}% "
            f"({', '.join(f'{m:.4f}' for m in r['medians_ms'])} ms)."
        )
    if data.get("budget"):
        lines += [
            "",
            "| trials per task | tasks | tuning s | TVM tuned ms | tuned / ort |",
            "| --- | --- | --- | --- | --- |",
        ]
        for r in data["budget"]:
            lines.append(
                f"| {r['trials_per_task']} | {r['tasks']} | {r['tuning_s']:.0f} | {r['median_ms']:.3f} | "
                f"{r['ratio_to_ort']:.2f} |"
            )
    if data.get("shared"):
        s = data["shared"]
        lines += [
            "",
            f"Shared tuning database ({s['trials_per_task']} trials per task): first subnet "
            f"{s['first']['tuned']} tasks in {s['first']['seconds']:.0f} s; second subnet alone "
            f"{s['second_alone']['tuned']} tasks in {s['second_alone']['seconds']:.0f} s; second subnet "
            f"after the first: {s['second_shared']['tuned']} tuned, {s['second_shared']['reused']} reused, "
            f"{s['second_shared']['seconds']:.0f} s.",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--trials", default="8,24", help="trial budgets per task for the budget sweep"
    )
    parser.add_argument(
        "--quick", action="store_true", help="no large subnet, one budget, no shared-database run"
    )
    parser.add_argument(
        "--tune",
        default="tiny subnet,small subnet,mbv2-64",
        help="models to tune in the latency table (comma-separated; 'none' for no tuning)",
    )
    parser.add_argument("--json", type=Path, default=Path("bench_targets.json"))
    args = parser.parse_args()
    budgets = [int(t) for t in args.trials.split(",")]

    from hwnas.measurement.host import cpu_info

    with tempfile.TemporaryDirectory(prefix="hwnas-bench-") as tmp:
        bench = Bench(args.threads, Path(tmp))
        data = bench.data
        data["cpu"] = cpu_info()
        data["peak_gflops"] = matmul_peak(args.threads)
        print(f"matmul peak: {data['peak_gflops']:.1f} GFLOP/s", flush=True)
        models = build_models(args.quick)
        shared_pair = (models.pop("subnet A"), models.pop("subnet B"))
        print("costs", flush=True)
        data["costs"] = bench.costs(models["tiny subnet"])
        print("latency", flush=True)
        tune = set() if args.tune == "none" else {t.strip() for t in args.tune.split(",")}
        data["latency"] = bench.latency(models, budgets[0], tune)
        print("repeatability", flush=True)
        data["repeatability"] = [
            bench.repeatability(models["mbv2-64"], spec) for spec in ("onnxruntime:cpu", "tvm:llvm")
        ]
        if not args.quick and tune:
            ort = next(
                r["median_ms"]
                for r in data["latency"]
                if r["model"] == "mbv2-64" and r["target"] == "onnxruntime:cpu"
            )
            print("tuning budget", flush=True)
            data["budget"] = bench.tuning_budget(models["mbv2-64"], budgets, ort)
            print("shared database", flush=True)
            data["shared"] = bench.shared_database(*shared_pair, budgets[0])
        bench.pool.close()
    args.json.write_text(json.dumps(data, indent=2, default=str))
    print()
    print(markdown(data))


if __name__ == "__main__":
    main()
