#!/usr/bin/env python3
"""Benchmark: time to extract a subnet and build its graph IR, for small/medium/large OFA-MobileNetV3 subnets.

Usage: ``python tools/bench_extract_ir.py [--presets tiny full] [--repeats 7] [--threads 1] [--json]``.
Each figure is the median over ``--repeats`` runs after one warm-up run
(the first ``torch.export`` of a process pays a one-off start-up cost); CPU
time is reported beside wall time because shared machines inflate the latter.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 1)


def bench(presets: list[str], repeats: int) -> list[dict[str, Any]]:
    from hwnas.ir import GraphIR
    from hwnas_plugins.supernets.mobilenet_v3 import OFAMobileNetV3

    rows = []
    for preset in presets:
        supernet = OFAMobileNetV3(preset=preset)
        module = supernet.build().eval()
        space = supernet.space
        subnets = {
            "small": space.smallest(),
            "medium": space.decode([len(g.choices) // 2 for g in space.genes]),
            "large": space.largest(),
        }
        for size, subnet in subnets.items():
            extract_s, ir_s, total_s, cpu_s = [], [], [], []
            ir = None
            for run in range(repeats + 1):
                cpu = time.process_time()
                start = time.perf_counter()
                static = supernet.extract(module, subnet)
                extracted = time.perf_counter()
                ir = GraphIR.from_module(static, (supernet.example_input(subnet),))
                _ = ir.kernel_groups
                done = time.perf_counter()
                cpu = time.process_time() - cpu
                if run == 0:
                    continue  # warm-up
                extract_s.append(extracted - start)
                ir_s.append(done - extracted)
                total_s.append(done - start)
                cpu_s.append(cpu)
            assert ir is not None
            rows.append(
                {
                    "preset": preset,
                    "subnet": size,
                    "resolution": subnet["resolution"],
                    "ops": len(ir.ops),
                    "kernels": len(ir.kernel_groups),
                    "macs": ir.macs,
                    "params": ir.params,
                    "extract_ms": _median_ms(extract_s),
                    "ir_ms": _median_ms(ir_s),
                    "total_ms": _median_ms(total_s),
                    "total_cpu_ms": _median_ms(cpu_s),
                    "repeats": repeats,
                }
            )
        del module
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--presets", nargs="+", default=["tiny", "full"], help="ofa-mbv3 presets to time"
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed runs per subnet (median reported)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    rows = bench(args.presets, args.repeats)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(
        f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, {args.threads} thread(s)"
    )
    header = "| preset | subnet | px | ops | kernels | MMACs | params | extract ms | IR ms | total ms | total CPU ms |"
    print(header)
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(
            f"| {r['preset']} | {r['subnet']} | {r['resolution']} | {r['ops']} | {r['kernels']} | "
            f"{r['macs'] / 1e6:.1f} | {r['params']:,} | {r['extract_ms']} | {r['ir_ms']} | {r['total_ms']} | {r['total_cpu_ms']} |"
        )


if __name__ == "__main__":
    main()
