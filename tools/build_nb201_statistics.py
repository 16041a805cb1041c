"""Rebuild hwnas/search_core/data/nb201_statistics.csv.gz: the graph-IR counts of every NAS-Bench-201 cell's network.

Usage: .venv/bin/python tools/build_nb201_statistics.py   (a few minutes; prints its CPU time)
"""

from __future__ import annotations

import sys
import time

from hwnas.search_core import nb201_statistics


def main() -> None:
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    rows = nb201_statistics.build_table(
        progress=lambda done, total: print(f"\r{done}/{total}", end="", file=sys.stderr)
    )
    print(
        f"\n{len(rows)} cells, {len({tuple(r.values()) for r in rows.values()})} distinct rows, "
        f"{time.perf_counter() - start_wall:.0f} s wall, {time.process_time() - start_cpu:.0f} s CPU "
        f"-> {nb201_statistics.TABLE}"
    )


if __name__ == "__main__":
    main()
