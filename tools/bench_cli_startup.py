"""Start-up time of the ``hwnas`` command: ``--help``, ``plugins`` and ``targets``, medians over repeats.

Usage: python tools/bench_cli_startup.py [--repeats 7]. The goal for ``--help`` is under 0.5 s:
it must import neither torch nor tvm.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = (["--help"], ["--version"], ["plugins"], ["targets"])


def time_command(args: list[str], repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hwnas", *args], capture_output=True, check=True)
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    time_command(["--version"], 1)  # warm the file cache
    print(f"{'command':<16} {'median s':>9} {'min s':>7} {'max s':>7}")
    for command in COMMANDS:
        samples = time_command(command, args.repeats)
        print(
            f"hwnas {' '.join(command):<10} {statistics.median(samples):9.3f} {min(samples):7.3f} {max(samples):7.3f}"
        )


if __name__ == "__main__":
    main()
