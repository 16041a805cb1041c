"""Small real search runs for the report tests: a user's function with latency samples, failures and a constraint.

Deterministic per subnet, so two strategies searching it give comparable runs;
the ``two_small_runs`` fixture (loaded by conftest.py) makes them once per session.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

import hwnas
from hwnas.model.search_space import Gene, SearchSpace, Subnet
from hwnas.search_core.evaluator import Metrics

OBJECTIVES = ("accuracy", "latency")
CONSTRAINT = "latency<=3ms"


def space() -> SearchSpace:
    """A small supernet-like space with a conditional gene (``width3`` only in depth-3 nets): 168 subnets."""
    return SearchSpace(
        "toy-net",
        [
            Gene("resolution", (8, 12, 16)),
            Gene("depth", (2, 3)),
            Gene("width1", (8, 16, 32, 64)),
            Gene("kernel", (3, 5, 7)),
            Gene("width3", (8, 16), active_if=("depth", (3,))),
        ],
    )


def evaluate(subnet: Subnet) -> Metrics:
    """Accuracy and latency grow with size (accuracy not only with it); kernel 7 at width 64 "runs out of memory" (fails)."""
    if subnet["kernel"] == 7 and subnet["width1"] == 64:
        raise RuntimeError(f"out of memory on the device at width1={subnet['width1']}")
    size = subnet["resolution"] ** 2 * (
        subnet["width1"] * subnet["kernel"] ** 2 + subnet.get("width3", 0) * 9
    )
    size *= subnet["depth"]
    macs = float(size * 4)
    seed = int(hashlib.sha256(subnet.key.encode()).hexdigest()[:8], 16)
    rng = np.random.default_rng(seed)
    # size buys accuracy with diminishing returns; kernel 5 and resolution help beyond their cost
    accuracy = 0.70 + 0.2 * (1 - np.exp(-size / 4e5)) + 0.03 * (subnet["kernel"] == 5)
    accuracy += 0.002 * subnet["resolution"] + 0.02 * rng.random()
    latency = 0.2 + size / 2.5e5
    spread = 0.12 if seed % 4 == 0 else 0.01  # every fourth candidate is noisy
    samples = tuple(float(latency * (1 + spread * rng.standard_normal())) for _ in range(9))
    return Metrics(
        {
            "accuracy": float(accuracy),
            "latency": float(np.median(samples)),
            "macs": macs,
            "params": macs / 50,
        },
        samples,
    )


def small_run(
    out: Path, *, strategy: str = "random", budget: int = 24, seed: int = 3
) -> hwnas.SearchResult:
    return hwnas.search(
        space(),
        evaluate,
        OBJECTIVES,
        strategy=strategy,
        budget=budget,
        constraints=[CONSTRAINT],
        out=out,
        seed=seed,
    )


@pytest.fixture(scope="session")
def two_small_runs(tmp_path_factory) -> tuple[Path, Path, hwnas.SearchResult, hwnas.SearchResult]:
    """Two finished runs of this problem (random, NSGA-II), made once per test session: (dir, dir, result, result)."""
    root = tmp_path_factory.mktemp("report-runs")
    a, b = root / "random", root / "nsga2"
    return a, b, small_run(a), small_run(b, strategy="nsga2", seed=1)
