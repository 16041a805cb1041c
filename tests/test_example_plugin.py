"""The example third-party plugin, loaded through its entry point, works in a real search."""

from __future__ import annotations

import hwnas
from hwnas.model.search_space import Gene, SearchSpace


def _space() -> SearchSpace:
    return SearchSpace("toy", [Gene(f"g{i}", (0, 1, 2, 3)) for i in range(4)])


def _evaluate(subnet):
    x = [subnet[f"g{i}"] for i in range(4)]
    # Two conflicting objectives: "accuracy" grows with the sum, "latency" with the squares.
    return {"accuracy": sum(x) / 12, "latency": 1.0 + sum(v * v for v in x)}


def test_hill_climb_strategy_comes_from_the_entry_point(plugin_host):
    assert plugin_host.registrations("strategy")["hill-climb"].plugin == "example"


def test_hill_climb_searches_without_repeats_and_respects_the_budget(plugin_host):
    result = hwnas.search(
        _space(), _evaluate, ("accuracy", "latency"), strategy="hill-climb", budget=40, seed=3
    )
    keys = [e.key for e in result.evaluations]
    assert len(keys) == 40 and len(set(keys)) == 40
    # Along the true front every gene is equal-ish; hill climbing must find more
    # than the 2 extremes: the front holds several trade-off points.
    assert len(result.pareto) >= 4
    latencies = [e.values["latency"] for e in result.pareto]
    assert min(latencies) <= 2.0  # reached the cheap end (all genes 0 or one gene 1)
