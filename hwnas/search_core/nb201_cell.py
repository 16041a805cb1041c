"""What a NAS-Bench-201 cell computes: its live edges, op counts, input-output connection and isomorphism class.

Pure Python on the six edge operations; the network built from a cell lives in
:mod:`hwnas.search_core.nb201_network`, the tables and the search problem in :mod:`hwnas.search_core.nb201`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# cell edges in arch-string order: (to node, from node)
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
OUTPUT_NODE = 3
# ops that compute something (``none`` is a zero, dropped from any compiled graph)
COMPUTING = OPS[1:]


@dataclass(frozen=True)
class Edge:
    source: int
    target: int
    op: str


def edges(ops: Sequence[str]) -> tuple[Edge, ...]:
    """The cell's non-``none`` edges, in arch-string order."""
    return tuple(
        Edge(src, to, op) for (to, src), op in zip(EDGES, ops, strict=True) if op != "none"
    )


def feeding_output(ops: Sequence[str]) -> tuple[Edge, ...]:
    """Edges from which the output node can be reached: what runs once dead ends are removed.

    Their input may still be zero (a node whose own inputs are all ``none``).
    """
    found = edges(ops)
    reaching = {OUTPUT_NODE}
    for edge in sorted(found, key=lambda e: -e.target):
        if edge.target in reaching:
            reaching.add(edge.source)
    return tuple(e for e in found if e.target in reaching)


def on_path(ops: Sequence[str]) -> tuple[Edge, ...]:
    """Edges on a path from the input node to the output node: what a compiler keeps after
    removing dead ends and folding computations on zeros."""
    found = feeding_output(ops)
    reached = {0}
    for edge in sorted(found, key=lambda e: e.target):
        if edge.source in reached:
            reached.add(edge.target)
    return tuple(e for e in found if e.source in reached)


def connected(ops: Sequence[str]) -> bool:
    """Whether the output depends on the input at all (if not, the network computes a constant
    and trains to chance accuracy)."""
    return bool(on_path(ops))


def op_counts(found: Sequence[Edge]) -> dict[str, int]:
    """How many of ``found`` run each computing op."""
    return {op: sum(e.op == op for e in found) for op in COMPUTING}


def canonical_form(found: Sequence[Edge]) -> tuple[tuple[int, int, str], ...]:
    """The same value for two edge sets that build the same network: the intermediate nodes 1
    and 2 may be swapped (the cell sums its inputs, so their order does not matter)."""
    forms = []
    for relabel in ({0: 0, 1: 1, 2: 2, 3: 3}, {0: 0, 1: 2, 2: 1, 3: 3}):
        forms.append(tuple(sorted((relabel[e.source], relabel[e.target], e.op) for e in found)))
    return min(forms)


def structure_features(ops: Sequence[str]) -> dict[str, float]:
    """Counts of computing ops on input-output paths and of those feeding the output, and the
    connected flag: what a latency predictor needs to see beyond the raw genes."""
    path, feeding = op_counts(on_path(ops)), op_counts(feeding_output(ops))
    return (
        {f"path_{op}": float(n) for op, n in path.items()}
        | {f"feeding_{op}": float(n) for op, n in feeding.items()}
        | {"connected": float(connected(ops))}
    )


def isomorphism_groups(cells: Sequence[Sequence[str]]) -> dict[tuple, list[int]]:
    """Indices of ``cells`` grouped by the network they run (edges feeding the output,
    canonical form): cells in one group run the same operations, so a device should time them alike."""
    groups: dict[tuple, list[int]] = {}
    for i, ops in enumerate(cells):
        groups.setdefault(canonical_form(feeding_output(ops)), []).append(i)
    return groups


@dataclass(frozen=True)
class Repeatability:
    """How well a latency table agrees with itself over cells that run the same network.

    ``pairs``: share of ordered pairs of such cells within ±10 % of each other;
    ``vs_group_median``: share of cells within ±10 % of the median of the rest of
    their group (groups of at least 3). Two noisy timings agree less often than one
    timing and the truth, so ``pairs`` is a floor; ``vs_group_median`` is close to
    what a perfect structure-based predictor could reach on the table.
    """

    pairs: float
    vs_group_median: float
    cells: int
    groups: int


def repeatability(cells: Sequence[Sequence[str]], latency: Sequence[float]) -> Repeatability:
    """The table's own agreement over isomorphic cells (cells running nothing are left out)."""
    values = np.asarray(latency, dtype=float)
    agree = total = 0
    near_median: list[bool] = []
    counted = groups = 0
    for form, members in isomorphism_groups(cells).items():
        if len(members) < 2 or not form:
            continue
        groups += 1
        counted += len(members)
        x = values[members]
        close = np.abs(x[:, None] - x[None, :]) <= 0.1 * x[None, :]
        agree += int(close.sum()) - len(x)
        total += len(x) * (len(x) - 1)
        if len(x) >= 3:
            for j in range(len(x)):
                near_median.append(bool(abs(np.median(np.delete(x, j)) - x[j]) <= 0.1 * x[j]))
    return Repeatability(
        pairs=agree / total if total else float("nan"),
        vs_group_median=float(np.mean(near_median)) if near_median else float("nan"),
        cells=counted,
        groups=groups,
    )


def effective_ops(ops: Sequence[str]) -> tuple[str, ...]:
    """The six edge ops with every edge off the input-output paths set to ``none``: two cells
    with equal effective ops train the same network."""
    kept = {(e.target, e.source) for e in on_path(ops)}
    return tuple(op if edge in kept else "none" for edge, op in zip(EDGES, ops, strict=True))


def ops_of(config: Mapping[str, str], genes: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(config[g]) for g in genes)
