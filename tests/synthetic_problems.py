"""Small search problems with known answers, shared by the search-core tests.

A ZDT1-like bi-objective problem over a discrete space, and a space with a conditional gene.
"""

from __future__ import annotations

import math

import numpy as np

from hwnas.model.search_space import Gene, SearchSpace, Subnet
from hwnas.search_core.objectives import Objective, hypervolume, normalisation_bounds

LEVELS = 11
TAIL_GENES = 4
TAIL_LEVELS = 5
OBJECTIVES = (Objective("f1", "min", bounds=(0.0, 1.0)), Objective("f2", "min", bounds=(0.0, 4.0)))


def zdt_space() -> SearchSpace:
    """x0 in 11 levels and four tail genes in 5 levels: 6,875 subnets."""
    genes = [Gene("x0", tuple(range(LEVELS)))]
    genes += [Gene(f"x{i}", tuple(range(TAIL_LEVELS))) for i in range(1, TAIL_GENES + 1)]
    return SearchSpace("zdt", genes)


def zdt_evaluate(subnet: Subnet) -> dict[str, float]:
    """ZDT1 on the grid: f1 = x0 / 10, g = 1 + 9 * mean(tail / 4), f2 = g * (1 - sqrt(f1 / g))."""
    f1 = subnet["x0"] / (LEVELS - 1)
    g = 1 + 9 * np.mean([subnet[f"x{i}"] / (TAIL_LEVELS - 1) for i in range(1, TAIL_GENES + 1)])
    return {"f1": f1, "f2": float(g * (1 - math.sqrt(f1 / g)))}


def zdt_true_front() -> np.ndarray:
    """All tail genes 0: f2 = 1 - sqrt(f1)."""
    f1 = np.arange(LEVELS) / (LEVELS - 1)
    return np.column_stack([f1, 1 - np.sqrt(f1)])


def zdt_best_hypervolume() -> float:
    lower, upper = normalisation_bounds(OBJECTIVES, zdt_true_front())
    return hypervolume(zdt_true_front(), lower, upper)


def conditional_space() -> SearchSpace:
    """``depth`` decides whether ``width3`` exists: canonical configs drop it when inactive (24 subnets)."""
    return SearchSpace(
        "cond",
        [
            Gene("depth", (2, 3)),
            Gene("width1", (8, 16, 32)),
            Gene("width2", (8, 16)),
            Gene("width3", (8, 16, 32), active_if=("depth", (3,))),
        ],
    )


def conditional_evaluate(subnet: Subnet) -> dict[str, float]:
    widths = [subnet["width1"], subnet["width2"], subnet.get("width3", 0)]
    size = float(sum(widths))
    return {
        "accuracy": 1 - 1 / (1 + size / 20),
        "latency": 0.1 * size + (1.0 if subnet["depth"] == 3 else 0.0),
    }
