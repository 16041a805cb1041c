"""Benchmark of ``hwnas report`` on big runs: time to write the page, its size, and Chromium's time to draw it.

Usage: .venv/bin/python tools/bench_report.py [--sizes 200,1000,3000] [--repeats 3] [--no-browser]
Runs real searches (random strategy, a cheap function with 10 latency samples
per candidate) into a temporary directory, then times the report of each.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import hwnas
from hwnas.model.search_space import Gene, SearchSpace, Subnet
from hwnas.search_core.evaluator import Metrics
from hwnas.search_core.report_page import write_report

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _space() -> SearchSpace:
    """Ten genes of four choices plus a conditional one: about 1.3 M subnets, like a small supernet."""
    genes = [Gene(f"s{i}.width", (8, 16, 24, 32)) for i in range(10)]
    return SearchSpace(
        "bench-net",
        [Gene("depth", (2, 3)), *genes, Gene("extra", (1, 2), active_if=("depth", (3,)))],
    )


def _evaluate(subnet: Subnet) -> Metrics:
    widths = np.array([subnet[f"s{i}.width"] for i in range(10)], dtype=float)
    size = float(widths.sum() * subnet["depth"])
    rng = np.random.default_rng(int(subnet.key[:8], 16))
    latency = 0.1 + size / 500
    samples = tuple(float(latency * (1 + 0.03 * rng.standard_normal())) for _ in range(10))
    return Metrics(
        {
            "accuracy": 1 - np.exp(-size / 300) + 0.02 * rng.random(),
            "latency": latency,
            "macs": size * 1e5,
        },
        samples,
    )


def _page_seconds(page: Path) -> float:
    from headless_chromium import HeadlessChromium, chromium_path

    executable = chromium_path()
    if executable is None:
        return float("nan")
    with HeadlessChromium(executable) as browser:
        start = time.perf_counter()
        browser.open(page)
        browser.wait_until("document.body.dataset.ready === '1'", timeout=120)
        seconds = time.perf_counter() - start
        if browser.errors():
            raise SystemExit(f"{page}: errors in the browser: {browser.errors()}")
        return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000,3000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in cpu.splitlines()
            if line.startswith("Model name")
        ),
        "?",
    )
    print(f"CPU: {model}; medians of {args.repeats} repeats\n")
    print(
        "| evaluations | write report (wall s) | write report (CPU s) | page size (MB) | Chromium load + draw (s) |"
    )
    print("| ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            run = Path(tmp) / f"run{size}"
            hwnas.search(
                _space(),
                _evaluate,
                ("accuracy", "latency"),
                strategy="random",
                budget=size,
                constraints=["latency<=1.2ms"],
                out=run,
                seed=0,
            )
            walls, cpus = [], []
            for _ in range(args.repeats):
                wall, cpu_start = time.perf_counter(), time.process_time()
                page = write_report([run], Path(tmp) / f"r{size}.html").path
                walls.append(time.perf_counter() - wall)
                cpus.append(time.process_time() - cpu_start)
            browser = (
                "-"
                if args.no_browser
                else f"{statistics.median(_page_seconds(page) for _ in range(args.repeats)):.2f}"
            )
            print(
                f"| {size} | {statistics.median(walls):.2f} | {statistics.median(cpus):.2f} | "
                f"{page.stat().st_size / 1e6:.2f} | {browser} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
