"""``check_strategy`` and ``check_predictor``: the search plugins' contracts, on small problems with known answers.

A strategy must propose distinct canonical subnets, never repeat what it was
told, resume exactly from its state, respect a candidate pool and survive
failures; a predictor must learn an easy function and refuse bad input.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from hwnas.errors import ConfigError, HwnasError
from hwnas.model.search_space import Gene, SearchSpace, Subnet
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.objectives import Constraint, Objective, total_violation
from hwnas.search_core.predictor import Predictor, PredictorSettings
from hwnas.search_core.strategy import Strategy, StrategySettings
from hwnas.testing.failures import ConformanceError, require

#: The kit's two objectives, in conflict: bigger subnets are more "accurate" and slower.
KIT_OBJECTIVES = (Objective("accuracy", "max"), Objective("latency", "min"))
#: Held-out Kendall tau a predictor must reach on the kit's easy functions.
MIN_KENDALL_TAU = 0.6


def kit_space() -> SearchSpace:
    """Depth decides whether the third width exists; with a categorical gene: 72 subnets."""
    return SearchSpace(
        "kit",
        [
            Gene("depth", (1, 2)),
            Gene("width_a", (4, 8, 12)),
            Gene("width_b", (4, 8, 12), active_if=("depth", (2,))),
            Gene("act", ("relu", "gelu")),
            Gene("kernel", (3, 5, 7)),
        ],
    )


def kit_evaluate(subnet: Subnet) -> dict[str, float]:
    size = subnet["width_a"] + subnet.get("width_b", 0) + subnet["kernel"]
    bonus = 0.02 if subnet["act"] == "gelu" else 0.0
    return {
        "accuracy": 1 - 1 / (1 + size / 10) + bonus,
        "latency": 0.05 * size * subnet["kernel"] / 3 + (0.3 if subnet["act"] == "gelu" else 0.0),
    }


def _told(subnets: Sequence[Subnet], constraints: Sequence[Constraint] = ()) -> list[Evaluation]:
    evaluations = []
    for subnet in subnets:
        values = kit_evaluate(subnet)
        evaluations.append(
            Evaluation(subnet, values=values, violation=total_violation(values, constraints))
        )
    return evaluations


def _strategy_class(strategy: str | type[Strategy]) -> type[Strategy]:
    if isinstance(strategy, str):
        from hwnas.registry import strategy_class

        return strategy_class(strategy)
    return strategy


def check_strategy(
    strategy: str | type[Strategy], settings: StrategySettings | None = None
) -> None:
    """Check a strategy class (or registered name) against the ask/tell contract; raise :class:`ConformanceError`."""
    cls = _strategy_class(strategy)
    where = f"strategy {getattr(cls, 'name', cls.__qualname__)!r}"
    _check_settings_class(cls, StrategySettings, where)
    space = kit_space()

    def make(seed: int = 0, **kw: Any) -> Strategy:
        return cls(space, KIT_OBJECTIVES, (), seed, settings, **kw)

    # ask/tell: distinct, canonical, never a subnet told before
    first, twin = make(seed=3), make(seed=3)
    seen: set[str] = set()
    for round_ in range(5):
        batch = first.ask(4)
        require(
            1 <= len(batch) <= 4, f"{where}: ask(4) gave {len(batch)} subnets in round {round_}"
        )
        keys = [s.key for s in batch]
        require(len(set(keys)) == len(keys), f"{where}: ask(4) repeated a subnet: {keys}")
        for subnet in batch:
            require(
                subnet == space.subnet(subnet.to_dict()),
                f"{where}: proposed {subnet} is not canonical (use space.subnet / admissible())",
            )
        require(not set(keys) & seen, f"{where}: proposed subnets it was already told about")
        seen |= set(keys)
        require(
            [s.key for s in twin.ask(4)] == keys,
            f"{where}: two instances with the same seed proposed different subnets",
        )
        evaluations = _told(batch)
        first.tell(evaluations)
        twin.tell(evaluations)
    require(
        len(first.history) == len(seen) and first.known_keys == seen,
        f"{where}: history and known_keys do not hold every subnet told",
    )
    require(
        not first.violations(first.history).any(),
        f"{where}: evaluations without constraints count as violating",
    )
    sample = first.history[0].subnet
    require(
        first.is_known(sample.key) and first.admissible(space.encode(sample)[None])[0] == sample,
        f"{where}: admissible() does not decode an encoding back to its subnet",
    )

    # state: plain data that pickles, and resumes exactly in a fresh instance
    state = first.state_dict()
    try:
        pickle.dumps(state)
    except Exception as exc:
        raise ConformanceError(f"{where}: state_dict() does not pickle ({exc})") from None
    resumed = make(seed=999)
    resumed.load_state_dict(state, {e.key: e for e in first.history})
    for _ in range(2):
        a, b = first.ask(4), resumed.ask(4)
        require(
            [s.key for s in a] == [s.key for s in b],
            f"{where}: after load_state_dict() the next ask differs from the original's",
        )
        evaluations = _told(a)
        first.tell(evaluations)
        resumed.tell(evaluations)

    # failures are told too, and the search goes on
    failing = make(seed=5)
    batch = failing.ask(6)
    told = [Evaluation(s, violation=math.inf, error="RuntimeError: kit failure") for s in batch[:3]]
    failing.tell(told + _told(batch[3:]))
    require(len(failing.ask(4)) > 0, f"{where}: stopped proposing after failed evaluations")

    # a candidate pool bounds every proposal
    rng = np.random.default_rng(0)
    pool = list({s.key: s for s in (space.sample(rng) for _ in range(30))}.values())
    pooled = make(seed=1, candidates=pool)
    allowed = {s.key for s in pool}
    for _ in range(3):
        batch = pooled.ask(5)
        require(
            all(s.key in allowed for s in batch),
            f"{where}: proposed a subnet outside the candidate pool",
        )
        pooled.tell(_told(batch))

    # through the search loop, a pool of 8 is exhausted without repeats, and the search stops
    from hwnas.search_core.api import search

    result = search(
        space,
        kit_evaluate,
        KIT_OBJECTIVES,
        strategy=cls,
        budget=20,
        batch_size=3,
        candidates=pool[:8],
        settings=settings,
        seed=2,
    )
    keys = [e.key for e in result.evaluations]
    require(
        len(keys) == len(set(keys)) <= 8,
        f"{where}: a search over a pool of 8 evaluated {len(keys)} subnets ({len(set(keys))} distinct)",
    )

    # constraints are accepted and every objective column is filled
    constrained = cls(space, KIT_OBJECTIVES, (Constraint.parse("latency<=1.5"),), 0, settings)
    batch = constrained.ask(4)
    constrained.tell(_told(batch, constrained.constraints))
    require(
        constrained.objective_matrix(constrained.history).shape == (len(batch), 2),
        f"{where}: objective_matrix() has the wrong shape",
    )
    require(
        _expect_error(lambda: make().ask(0), ConfigError), f"{where}: ask(0) must raise ConfigError"
    )


def _predictor_class(predictor: str | type[Predictor]) -> type[Predictor]:
    if isinstance(predictor, str):
        from hwnas.registry import predictor_class

        return predictor_class(predictor)
    return predictor


#: Per-kernel costs behind the kit's "kernels" problem: a kernel predictor may look them up.
KIT_KERNEL_COSTS = {f"kernel-{i}": 0.1 + 0.2 * i for i in range(12)}


def kit_regression(kind: str, n: int, seed: int = 0) -> tuple[Any, np.ndarray]:
    """An easy positive target: smooth in 6 features, or additive over kernel keys (plus overhead)."""
    rng = np.random.default_rng(seed)
    if kind == "kernels":
        names = list(KIT_KERNEL_COSTS)
        X = [list(map(str, rng.choice(names, size=int(rng.integers(3, 10))))) for _ in range(n)]
        return X, np.array([0.3 + sum(KIT_KERNEL_COSTS[k] for k in row) for row in X])
    X = rng.random((n, 6))
    y = 1 + 2 * X[:, 0] + X[:, 1] ** 2 + 0.5 * X[:, 2] * X[:, 3] + 0.3 * X[:, 4]
    return X, y


def check_predictor(
    predictor: str | type[Predictor],
    settings: PredictorSettings | None = None,
    *,
    make: Callable[[PredictorSettings], Predictor] | None = None,
) -> None:
    """Check a predictor class (or registered name): it learns an easy function and refuses bad input.

    ``make(settings)`` builds an instance where the class takes more than
    settings (e.g. a kernel lookup table's ``measure_kernel``).
    """
    cls = _predictor_class(predictor)
    where = f"predictor {getattr(cls, 'name', cls.__qualname__)!r}"
    _check_settings_class(cls, PredictorSettings, where)
    require(
        cls.input_kind in ("vector", "kernels"),
        f"{where}: input_kind must be 'vector' or 'kernels', not {cls.input_kind!r}",
    )
    base = settings or cls.settings_class()
    build = make or cls
    X, y = kit_regression(cls.input_kind, 200)
    X_fit, y_fit, X_test, y_test = X[:150], y[:150], X[150:], y[150:]
    require(
        _expect_error(lambda: build(base).predict(X_test), HwnasError),
        f"{where}: predict() before fit() must raise HwnasError",
    )
    model = build(base)
    require(model.fit(X_fit, y_fit) is model, f"{where}: fit() must return the predictor")
    require(model.fitted, f"{where}: fitted is not set after fit()")
    predicted = model.predict(X_test)
    require(
        predicted.shape == (50,) and np.all(np.isfinite(predicted)),
        f"{where}: predict() of 50 examples gave shape {predicted.shape} or non-finite values",
    )
    quality = model.quality(X_test, y_test)
    require(
        quality.kendall_tau >= MIN_KENDALL_TAU,
        f"{where}: ranks an easy held-out function poorly ({quality}); needs "
        f"kendall_tau >= {MIN_KENDALL_TAU}",
    )
    again = build(base).fit(X_fit, y_fit).predict(X_test)
    require(
        np.allclose(again, predicted, rtol=1e-6, atol=1e-9),
        f"{where}: two fits on the same data predict differently (seed your randomness)",
    )
    copy = build(base).fit(X_fit, y_fit).fresh()
    require(
        np.allclose(copy.fit(X_fit, y_fit).predict(X_test), predicted, rtol=1e-6, atol=1e-9),
        f"{where}: fresh() must give an unfitted copy that fits like the original (override it "
        "when the predictor holds more than its settings)",
    )
    logged = build(dataclasses.replace(base, target="log")).fit(X_fit, y_fit).predict(X_test)
    require(
        np.all(logged > 0),
        f"{where}: with target='log', predictions of positive targets must be > 0",
    )
    require(
        _expect_error(lambda: build(base).fit(X_fit[:10], y_fit[:9]), ConfigError),
        f"{where}: fit() with 10 examples and 9 targets must raise ConfigError",
    )


def _check_settings_class(cls: type, base: type, where: str) -> None:
    require(isinstance(getattr(cls, "name", None), str) and cls.name, f"{where}: no name")
    require(bool(getattr(cls, "description", "")), f"{where}: no description (listings show it)")
    settings_class = cls.settings_class
    require(
        issubclass(settings_class, base) and dataclasses.is_dataclass(settings_class),
        f"{where}: settings_class must be a dataclass subclassing {base.__name__}",
    )
    require(
        settings_class.__dataclass_params__.frozen,  # type: ignore[attr-defined]
        f"{where}: settings_class must be frozen (settings are data)",
    )
    try:
        defaults = settings_class()
    except TypeError as exc:
        raise ConformanceError(f"{where}: every setting needs a default ({exc})") from None
    try:
        json.dumps(dataclasses.asdict(defaults), default=list)
    except (TypeError, ValueError) as exc:
        raise ConformanceError(f"{where}: settings must be plain data ({exc})") from None


def _expect_error(call: Any, error: type[BaseException]) -> bool:
    try:
        call()
    except error:
        return True
    return False
