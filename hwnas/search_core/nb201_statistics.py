"""Free statistics of every NAS-Bench-201 cell: IR counts (MACs, parameters, activation memory) and structure.

The IR counts come from :func:`~hwnas.search_core.nb201_network.network_ir` for
all 15,625 cells; building them takes minutes, so they ship precomputed in
``data/nb201_statistics.csv.gz`` (rebuild with ``python tools/build_nb201_statistics.py``;
a test checks rows against a fresh build).
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from hwnas.digests import sha256_file
from hwnas.errors import ConfigError
from hwnas.model.search_space import SearchSpace, Subnet
from hwnas.search_core.free_statistics import FreeStatistics
from hwnas.search_core.nb201_cell import (
    OPS,
    canonical_form,
    on_path,
    structure_features,
)

if TYPE_CHECKING:
    from hwnas.search_core.nb201 import NB201Tables

TABLE = Path(__file__).parent / "data" / "nb201_statistics.csv.gz"
# counted on the graph IR of the whole network
IR_COLUMNS = ("macs", "params", "peak_memory", "bytes_moved", "kernels")


def cell_code(ops: Sequence[str]) -> str:
    """Six digits, the index of each edge's op in :data:`OPS` (``"333333"``: all 3x3 convs)."""
    return "".join(str(OPS.index(op)) for op in ops)


def every_cell() -> list[tuple[str, ...]]:
    return [tuple(ops) for ops in itertools.product(OPS, repeat=6)]


def ir_counts(ops: Sequence[str]) -> dict[str, int]:
    from hwnas.search_core.nb201_network import network_ir

    totals = network_ir(ops).totals()
    return {
        "macs": totals["macs"],
        "params": totals["params"],
        "peak_memory": totals["peak_activation_bytes"],
        "bytes_moved": totals["bytes_moved"],
        "kernels": totals["kernels"],
    }


def build_table(
    path: Path = TABLE, progress: Callable[[int, int], None] | None = None
) -> dict[str, dict[str, int]]:
    """Build the IR of every cell's network (once per distinct network) and write the table."""
    cells = every_cell()
    by_form: dict[tuple, dict[str, int]] = {}
    rows: dict[str, dict[str, int]] = {}
    for i, ops in enumerate(cells):
        form = canonical_form(on_path(ops))
        if form not in by_form:
            by_form[form] = ir_counts(ops)
        rows[cell_code(ops)] = by_form[form]
        if progress is not None and (i + 1) % 500 == 0:
            progress(i + 1, len(cells))
    path.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0: the same table gives the same bytes, so a rebuild shows no spurious diff
    with gzip.GzipFile(path, "wb", mtime=0) as raw, io.TextIOWrapper(raw, newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["cell", *IR_COLUMNS])
        for code in sorted(rows):
            writer.writerow([code, *(rows[code][c] for c in IR_COLUMNS)])
    return rows


@functools.lru_cache(maxsize=2)
def load_table(path: Path = TABLE) -> dict[str, dict[str, int]]:
    """Cell code -> IR counts, for all 15,625 cells."""
    if not path.is_file():
        raise ConfigError(
            f"NAS-Bench-201 statistics table {path} not found",
            hint="rebuild it with `python tools/build_nb201_statistics.py`",
        )
    with gzip.open(path, "rt", newline="") as f:
        reader = csv.DictReader(f)
        return {row["cell"]: {c: int(row[c]) for c in IR_COLUMNS} for row in reader}


def statistics_names() -> tuple[str, ...]:
    return (*IR_COLUMNS, *structure_features(("none",) * 6))


@functools.lru_cache(maxsize=2)
def every_cell_matrix(path: Path = TABLE) -> np.ndarray:
    """The statistics of all 15,625 cells, row ``i`` for the cell whose op indices read ``i`` in base 5."""
    table = load_table(path)
    rows = []
    for ops in every_cell():
        counts = table[cell_code(ops)]
        rows.append([*(counts[c] for c in IR_COLUMNS), *structure_features(ops).values()])
    matrix = np.array(rows, dtype=float)
    matrix.flags.writeable = False
    return matrix


def cell_index(op_indices: np.ndarray) -> np.ndarray:
    """Row of :func:`every_cell_matrix` for each row of op indices (one column per edge)."""
    op_indices = np.atleast_2d(op_indices)
    return op_indices @ (len(OPS) ** np.arange(op_indices.shape[1] - 1, -1, -1))


def statistics_matrix(cells: Sequence[Sequence[str]], path: Path = TABLE) -> np.ndarray:
    """One row per cell: the IR counts, then the structure features (see :func:`statistics_names`)."""
    indices = np.array([[OPS.index(op) for op in ops] for ops in cells], dtype=int)
    matrix = every_cell_matrix(path)
    return matrix[cell_index(indices)] if len(indices) else np.zeros((0, matrix.shape[1]))


class NB201Statistics(FreeStatistics):
    """The free statistics of NAS-Bench-201 cells, optionally with per-kernel LUT sums.

    ``luts`` maps latency metric names to devices (``{"latency": "raspi4"}``); for
    each, a per-kernel table is built once from ``tables`` (26 networks timed: the
    all-skip network and each edge op changed alone, see
    :func:`~hwnas.search_core.nb201.kernel_measurer`) and its sum over a cell's
    kernels becomes the statistic ``lut_<metric>``.
    """

    def __init__(
        self, tables: NB201Tables | None = None, luts: Mapping[str, str] | None = None
    ) -> None:
        from hwnas.search_core.nb201 import every_kernel, kernel_measurer

        luts = dict(luts or {})
        if luts and tables is None:
            raise ConfigError("NB201Statistics: LUT sums need the latency tables")
        self.kernel_tables: dict[str, dict[str, float]] = {}
        for metric, device in luts.items():
            measure = kernel_measurer(tables, device)  # type: ignore[arg-type]
            self.kernel_tables[f"lut_{metric}"] = {k: measure(k) for k in every_kernel()}
        self._devices = luts
        self._names = (*statistics_names(), *self.kernel_tables)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def compute(self, subnets: Sequence[Subnet]) -> np.ndarray:
        from hwnas.search_core.nb201 import cell_ops

        return self._rows(
            np.array([[OPS.index(op) for op in cell_ops(s)] for s in subnets], dtype=int)
        )

    def compute_encoded(self, space: SearchSpace, X: np.ndarray) -> np.ndarray:
        from hwnas.search_core.nb201 import search_space

        if space.signature != search_space().signature:
            return super().compute_encoded(space, X)
        return self._rows(np.atleast_2d(X))

    def _rows(self, op_indices: np.ndarray) -> np.ndarray:
        if not hasattr(self, "_every"):
            from hwnas.search_core.nb201 import cell_kernel_keys

            # every cell once: the LUT sums too, so a search's rows are plain lookups
            every = every_cell()
            sums = [
                [sum(table[k] for k in cell_kernel_keys(ops)) for ops in every]
                for table in self.kernel_tables.values()
            ]
            self._every = (
                np.column_stack([every_cell_matrix(), *sums]) if sums else every_cell_matrix()
            )
        if len(op_indices) == 0:
            return np.zeros((0, len(self._names)))
        return self._every[cell_index(op_indices)]

    def fingerprint(self) -> str:
        luts = ",".join(f"{m}={d}" for m, d in self._devices.items())
        return f"nb201-statistics:{sha256_file(TABLE)[:12]}" + (f":lut[{luts}]" if luts else "")
