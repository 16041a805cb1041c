"""Search strategies: registration, the ask/tell contract, resume state, settings, and search quality."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from synthetic_problems import (
    OBJECTIVES,
    conditional_evaluate,
    conditional_space,
    zdt_best_hypervolume,
    zdt_evaluate,
    zdt_space,
)

import hwnas
from hwnas.errors import ConfigError, UnknownNameError
from hwnas.registry import strategy_class, strategy_classes
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.objectives import Constraint, Objective, parse_objectives, total_violation
from hwnas.search_core.strategy import Strategy, StrategySettings

STRATEGIES = ("random", "nsga2", "evolution", "linas")
GUIDED = ("nsga2", "evolution", "linas")
SMALL = {
    "nsga2": {"population_size": "20"},
    "evolution": {"population_size": "20", "sample_size": "5"},
}


def _evaluation(subnet, evaluate, objectives, constraints=()) -> Evaluation:
    values = evaluate(subnet)
    return Evaluation(subnet, values=values, violation=total_violation(values, constraints))


def _make(name: str, space, objectives=OBJECTIVES, constraints=(), seed=0, **kw) -> Strategy:
    cls = strategy_class(name)
    settings = cls.settings_class.from_strings(SMALL.get(name, {}))
    return cls(space, objectives, constraints, seed, settings, **kw)


def test_builtin_strategies_are_registered(plugin_host) -> None:
    assert set(STRATEGIES) <= set(strategy_classes())
    for name in STRATEGIES:
        assert issubclass(strategy_class(name), Strategy)
        assert strategy_class(name).name == name
    with pytest.raises(UnknownNameError, match="unknown search strategy 'nope'"):
        strategy_class("nope")


@pytest.mark.parametrize("name", STRATEGIES)
def test_ask_gives_distinct_new_canonical_subnets(plugin_host, name: str) -> None:
    space = conditional_space()
    objectives = parse_objectives(["accuracy", "latency"])
    strategy = _make(name, space, objectives, seed=3)
    seen: set[str] = set()
    for _ in range(6):
        proposals = strategy.ask(3)
        assert 1 <= len(proposals) <= 3
        keys = [p.key for p in proposals]
        assert len(set(keys)) == len(keys)
        for p in proposals:
            assert p == space.subnet(p.to_dict())  # canonical: inactive width3 dropped
            assert ("width3" in p.to_dict()) == (p["depth"] == 3)
        strategy.tell([_evaluation(p, conditional_evaluate, objectives) for p in proposals])
        assert not (set(keys) & seen)
        seen |= set(keys)
    with pytest.raises(ConfigError):
        strategy.ask(0)


@pytest.mark.parametrize("name", STRATEGIES)
def test_search_exhausts_a_small_space_without_repeats(plugin_host, name: str) -> None:
    space = conditional_space()  # 24 subnets
    result = hwnas.search(
        space,
        conditional_evaluate,
        ["accuracy", "latency"],
        strategy=name,
        budget=100,
        batch_size=5,
        settings=SMALL.get(name),
        seed=1,
    )
    keys = [e.key for e in result.evaluations]
    assert len(keys) == len(set(keys))
    assert len(keys) <= space.size() == 24
    assert len(keys) < 100 and result.stopped_reason


@pytest.mark.parametrize("name", STRATEGIES)
def test_state_dict_resumes_exactly(plugin_host, name: str) -> None:
    space = zdt_space()
    original = _make(name, space, seed=5)
    for _ in range(5):
        batch = original.ask(8)
        original.tell([_evaluation(s, zdt_evaluate, OBJECTIVES) for s in batch])
    state = original.state_dict()
    store = {e.key: e for e in original.history}
    resumed = _make(name, space, seed=999)  # the seed must come back from the state
    resumed.load_state_dict(state, store)
    for _ in range(3):
        a, b = original.ask(8), resumed.ask(8)
        assert [s.key for s in a] == [s.key for s in b]
        evaluations = [_evaluation(s, zdt_evaluate, OBJECTIVES) for s in a]
        original.tell(evaluations)
        resumed.tell(evaluations)


def test_load_state_rejects_other_strategy_and_missing_evaluations(plugin_host) -> None:
    space = zdt_space()
    random_strategy = _make("random", space)
    batch = random_strategy.ask(4)
    random_strategy.tell([_evaluation(s, zdt_evaluate, OBJECTIVES) for s in batch])
    with pytest.raises(ConfigError, match="for strategy 'random'"):
        _make("evolution", space).load_state_dict(random_strategy.state_dict(), {})
    with pytest.raises(ConfigError, match="lacks"):
        _make("random", space).load_state_dict(random_strategy.state_dict(), {})


@pytest.mark.parametrize("name", GUIDED)
def test_guided_strategies_approach_the_known_front(plugin_host, name: str) -> None:
    best = zdt_best_hypervolume()
    space = zdt_space()

    def ratio(strategy: str, seed: int) -> float:
        result = hwnas.search(
            space,
            zdt_evaluate,
            OBJECTIVES,
            strategy=strategy,
            budget=200,
            batch_size=10,
            seed=seed,
            settings=SMALL.get(strategy),
        )
        return result.hypervolume[-1] / best

    guided = np.mean([ratio(name, seed) for seed in (0, 1)])
    baseline = np.mean([ratio("random", seed) for seed in (0, 1)])
    assert guided >= 0.9, f"{name} reached only {guided:.3f} of the best hypervolume"
    assert guided > baseline + 0.03, (
        f"{name} ({guided:.3f}) is no better than random ({baseline:.3f})"
    )


@pytest.mark.parametrize("name", GUIDED)
def test_constraints_steer_the_search_while_it_runs(plugin_host, name: str) -> None:
    """With f1 >= 0.8 (18 % of the space feasible), guided strategies spend most later evaluations there."""
    space = zdt_space()
    constraint = Constraint.parse("f1>=0.8")
    share = {}
    for strategy in ("random", name):
        result = hwnas.search(
            space,
            zdt_evaluate,
            OBJECTIVES,
            strategy=strategy,
            budget=150,
            batch_size=10,
            seed=2,
            constraints=[constraint],
            settings=SMALL.get(strategy),
        )
        late = result.evaluations[-60:]
        share[strategy] = np.mean([e.feasible for e in late])
        assert all(e.values["f1"] >= 0.8 for e in result.pareto)
    assert share["random"] < 0.35
    assert share[name] >= 0.6, f"{name}: only {share[name]:.0%} of late evaluations feasible"


@pytest.mark.parametrize("name", STRATEGIES)
def test_candidate_pool_bounds_every_proposal(plugin_host, name: str) -> None:
    space = zdt_space()
    pool = [space.sample(np.random.default_rng(i)) for i in range(60)]
    result = hwnas.search(
        space,
        zdt_evaluate,
        OBJECTIVES,
        strategy=name,
        budget=40,
        batch_size=8,
        candidates=pool,
        settings=SMALL.get(name),
        seed=4,
    )
    allowed = {s.key for s in pool}
    assert len(result.evaluations) == 40
    assert all(e.key in allowed for e in result.evaluations)


def test_failed_evaluations_are_told_as_infeasible(plugin_host) -> None:
    space = zdt_space()
    strategy = _make("nsga2", space)
    batch = strategy.ask(20)
    told = [Evaluation(s, violation=float("inf"), error="RuntimeError: boom") for s in batch[:5]]
    told += [_evaluation(s, zdt_evaluate, OBJECTIVES) for s in batch[5:]]
    strategy.tell(told)
    assert strategy.constraint_slacks(told[:1])[0, -1] > 0
    assert len(strategy.ask(20)) > 0  # the generation completes and the search goes on


@dataclass(frozen=True)
class _ToySettings(StrategySettings):
    size: int = 3
    rate: float = 0.5
    flag: bool = False
    name: str = "x"
    pairs: tuple[tuple[str, str], ...] = ()
    sizes: tuple[int, ...] = ()


def test_settings_from_strings_converts_by_type() -> None:
    settings = _ToySettings.from_strings(
        {
            "size": "7",
            "rate": "0.25",
            "flag": "yes",
            "name": "abc",
            "pairs": "latency=gbdt,accuracy=svr",
            "sizes": "1,2",
        }
    )
    assert settings == _ToySettings(
        7, 0.25, True, "abc", (("latency", "gbdt"), ("accuracy", "svr")), (1, 2)
    )
    with pytest.raises(ConfigError, match="no setting 'sise'"):
        _ToySettings.from_strings({"sise": "1"})
    with pytest.raises(ConfigError, match="cannot read 'many' as int"):
        _ToySettings.from_strings({"size": "many"})
    with pytest.raises(ConfigError, match="cannot read 'maybe'"):
        _ToySettings.from_strings({"flag": "maybe"})


def test_strategy_rejects_settings_of_another_class(plugin_host) -> None:
    with pytest.raises(ConfigError, match="takes NSGA2Settings"):
        strategy_class("nsga2")(zdt_space(), OBJECTIVES, settings=StrategySettings())
    with pytest.raises(ConfigError, match="population_size"):
        strategy_class("nsga2")(
            zdt_space(),
            OBJECTIVES,
            settings=strategy_class("nsga2").settings_class(population_size=1),
        )


def test_linas_rejects_kernel_predictors_and_unknown_metrics(plugin_host) -> None:
    cls = strategy_class("linas")
    with pytest.raises(ConfigError, match="needs kernels inputs"):
        cls(zdt_space(), OBJECTIVES, settings=cls.settings_class(predictor="kernel-lut"))
    with pytest.raises(ConfigError, match="does not use"):
        cls(
            zdt_space(),
            OBJECTIVES,
            settings=cls.settings_class(predictor_for=(("energy", "ridge"),)),
        )
    with pytest.raises(UnknownNameError):
        cls(zdt_space(), OBJECTIVES, settings=cls.settings_class(predictor="nope"))


def test_linas_round_is_cheap_and_proposes_only_unmeasured(plugin_host) -> None:
    space = zdt_space()
    strategy = _make("linas", space, objectives=(Objective("f1", "min"), Objective("f2", "min")))
    for _ in range(6):
        batch = strategy.ask(25)
        assert not any(strategy._told.get(s.key) for s in batch)
        strategy.tell([_evaluation(s, zdt_evaluate, OBJECTIVES) for s in batch])
    assert strategy.last_round_seconds < 2.0
