"""LINAS's parts: features for non-ordinal integers, the unclipped gain box, diverse batches, the
held-out model choice, free statistics for the first batch, and the shortlist for costly statistics."""

from __future__ import annotations

import numpy as np
import pytest
from synthetic_problems import OBJECTIVES, zdt_evaluate, zdt_space

from hwnas.model.search_space import Gene, SearchSpace
from hwnas.registry import strategy_class
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.free_statistics import TableStatistics
from hwnas.search_core.objectives import Objective, hypervolume, pareto_mask


def _linas(space, objectives=OBJECTIVES, **kw):
    cls = strategy_class("linas")
    settings = kw.pop("settings", {})
    return cls(space, objectives, seed=0, settings=cls.settings_class.from_strings(settings), **kw)


def test_integer_genes_are_one_hot_as_well_as_ordinal(plugin_host) -> None:
    from hwnas_plugins.strategies.encoding import EncodingTools

    space = SearchSpace("ints", [Gene("kind", (0, 1, 2, 3, 4)), Gene("width", (8, 16, 32))])
    tools = EncodingTools(space)
    features = tools.features(np.array([[3, 0], [1, 2]]))
    # five one-hot columns for "kind", three for "width", then each gene's value scaled to [0, 1]
    assert features.shape == (2, 5 + 3 + 2)
    np.testing.assert_array_equal(features[0, :5], [0, 0, 0, 1, 0])
    assert features[0, 8] == pytest.approx(0.75) and features[1, 9] == pytest.approx(1.0)


def test_shared_choices_are_counted(plugin_host) -> None:
    from hwnas_plugins.strategies.encoding import EncodingTools

    ops = ("a", "b", "c")
    space = SearchSpace("cells", [Gene(f"e{i}", ops) for i in range(4)])
    features = EncodingTools(space).features(np.array([[0, 0, 2, 1]]))
    np.testing.assert_array_equal(features[0, -3:], [2, 1, 1])


def test_gain_box_keeps_predictions_beyond_the_measured_front(plugin_host) -> None:
    from hwnas_plugins.strategies.batch_choice import gain_box

    objectives = (
        Objective("f1", "min", bounds=(0.0, 1.0)),
        Objective("f2", "min", bounds=(0.0, 1.0)),
    )
    front = np.array([[0.2, 0.5], [0.5, 0.2]])
    beyond = np.array([[0.1, -0.4]])  # better than any measured f2 and below the declared bound
    lower, upper = gain_box(objectives, front, beyond)
    base = hypervolume(front, lower, upper)
    gained = hypervolume(np.vstack([front, beyond]), lower, upper) - base
    clipped = hypervolume(np.vstack([front, [[0.1, 0.0]]]), lower, upper) - base
    assert gained > clipped > 0  # clipping onto the old box would have lost the extension


def test_batches_keep_their_distance(plugin_host) -> None:
    space = zdt_space()
    strategy = _linas(space, settings={"min_distance": "2", "initial_samples": "10"})
    for _ in range(4):
        batch = strategy.ask(10)
        rows = np.stack([space.encode(s) for s in batch])
        if len(strategy.history) >= 10:
            distances = (rows[:, None, :] != rows[None, :, :]).sum(axis=2)
            assert distances[np.triu_indices(len(rows), 1)].min() >= 2
        strategy.tell([Evaluation(s, values=zdt_evaluate(s)) for s in batch])


def test_first_batch_lies_on_the_front_the_statistics_predict(plugin_host) -> None:
    """With a statistic equal to each objective, the first batch is the true front, not random picks."""
    space = zdt_space()
    every = [space.decode(row) for row in np.ndindex(*(space.upper_bounds + 1))]
    values = {s.key: zdt_evaluate(s) for s in every}
    statistics = TableStatistics(
        ("macs", "lut_latency"), {k: (v["f1"], v["f2"]) for k, v in values.items()}
    )
    objectives = (Objective("params", "min"), Objective("latency", "min"))
    assert statistics.prior("latency") == "lut_latency" and statistics.prior("params") is None
    blind = _linas(space, objectives, statistics=statistics)
    assert len(blind.ask(10)) == 10  # no prior for "params": random, still a full batch
    objectives = (Objective("macs", "min"), Objective("latency", "min"))
    # the true front differs in one gene only: no distance rule here
    strategy = _linas(space, objectives, statistics=statistics, settings={"min_distance": "0"})
    batch = strategy.ask(10)
    F = np.array([[values[s.key]["f1"], values[s.key]["f2"]] for s in every])
    front = {every[i].key for i in np.flatnonzero(pareto_mask(F))}
    assert all(s.key in front for s in batch)
    random_batch = _linas(space, objectives, settings={"min_distance": "0"}).ask(10)
    assert sum(s.key in front for s in random_batch) < 10


def test_model_choice_follows_held_out_error(plugin_host) -> None:
    from hwnas_plugins.strategies.linas_models import MetricModel

    rng = np.random.default_rng(0)
    genes = rng.random((40, 12))
    prior = rng.random((40, 1))
    y = 3.0 * prior[:, 0] + 0.01 * rng.random(40) + 1.0  # the prior explains everything
    model = MetricModel("latency", ("ridge", "lstsq"), ("prior", "genes"))
    fitted = model.fit({"genes": genes, "prior": prior}, y)
    assert fitted.feature_set == "prior" and [c.feature_set for c in model.ranking] == [
        "prior",
        "genes",
    ]
    second = model.fit({"genes": genes, "prior": prior}, y, rank=1)
    assert second.feature_set == "genes"


def test_costly_statistics_are_computed_for_a_shortlist_only(plugin_host) -> None:
    space = zdt_space()

    class Counted(TableStatistics):
        cheap = False
        computed: list[str] = []

        def compute(self, subnets):  # type: ignore[no-untyped-def]
            Counted.computed += [s.key for s in subnets]
            return super().compute(subnets)

    every = [space.decode(row) for row in np.ndindex(*(space.upper_bounds + 1))]
    statistics = Counted(("macs",), {s.key: (zdt_evaluate(s)["f1"],) for s in every})
    strategy = _linas(space, statistics=statistics, settings={"costly_shortlist": "3"})
    for _ in range(5):
        batch = strategy.ask(8)
        strategy.tell([Evaluation(s, values=zdt_evaluate(s)) for s in batch])
    assert len(strategy.history) == 40
    # measured subnets and shortlists of 3 x 8 per round, not the 6,875 candidates
    assert len(set(Counted.computed)) <= 40 + 5 * 3 * 8
