"""What one evaluation of a subnet is (:class:`Evaluation`), and the evaluator that produces them.

Metrics come from pluggable :class:`ObjectiveProvider` objects; where tasks run
is an :class:`~hwnas.search_core.executor.Executor`'s business, and storing them the run store's.
"""

from __future__ import annotations

import functools
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hwnas.errors import ConfigError
from hwnas.model.search_space import Subnet
from hwnas.search_core.executor import Executor
from hwnas.search_core.objectives import Constraint, Objective, total_violation


@dataclass(frozen=True)
class Metrics:
    """What a provider measured for one subnet: values by metric name, plus raw latency samples if timed."""

    values: Mapping[str, float]
    latency_samples: tuple[float, ...] = ()


class ObjectiveProvider(ABC):
    """Computes some metrics of a subnet: accuracy, measured latency, MACs, params, memory, ...

    This is the seam between the search and what is being searched: a user's
    function, a benchmark table or a fitted predictor implement it here; the
    supernet's accuracy (weights + BN recalibration), a target's measured
    latency and the IR's analytic counts implement it where those live. The
    evaluator calls every provider and merges what they return.
    """

    @property
    @abstractmethod
    def provides(self) -> tuple[str, ...]:
        """Metric names this provider returns; empty when only a call can tell (a user's function)."""

    @abstractmethod
    def measure(self, subnet: Subnet) -> Metrics:
        """Metrics of one subnet. Raise to mark this subnet failed; the search records it and goes on."""

    def fingerprint(self) -> str:
        """What the metrics depend on besides the subnet (target fingerprint, dataset, weights); part of the dedupe key."""
        return ""


class FunctionProvider(ObjectiveProvider):
    """Wraps ``evaluate(subnet) -> {metric: value}``, the plain-function form ``hwnas.search`` accepts."""

    def __init__(
        self,
        evaluate: Callable[[Subnet], Mapping[str, float] | Metrics],
        provides: Sequence[str] = (),
        fingerprint: str = "",
    ) -> None:
        if not callable(evaluate):
            raise ConfigError(f"evaluate must be callable, got {type(evaluate).__name__}")
        self._evaluate = evaluate
        self._provides = tuple(provides)
        self._fingerprint = fingerprint

    @property
    def provides(self) -> tuple[str, ...]:
        return self._provides

    def measure(self, subnet: Subnet) -> Metrics:
        result = self._evaluate(subnet)
        if isinstance(result, Metrics):
            return result
        if not isinstance(result, Mapping):
            raise ConfigError(
                f"evaluate({subnet}) returned {type(result).__name__}",
                hint="return a dict of metric name -> number, e.g. {'accuracy': 0.91, 'latency': 4.2}",
            )
        return Metrics(values=dict(result))

    def fingerprint(self) -> str:
        return self._fingerprint


class PredictorProvider(ObjectiveProvider):
    """A fitted predictor as a cheap proxy for one metric (e.g. latency from a kernel lookup table)."""

    def __init__(
        self, metric: str, predictor: Any, featurize: Callable[[Subnet], Any], fingerprint: str = ""
    ) -> None:
        self.metric = metric
        self.predictor = predictor
        self.featurize = featurize
        self._fingerprint = (
            fingerprint or f"predicted:{getattr(predictor, 'name', type(predictor).__name__)}"
        )

    @property
    def provides(self) -> tuple[str, ...]:
        return (self.metric,)

    def measure(self, subnet: Subnet) -> Metrics:
        return Metrics({self.metric: float(self.predictor.predict([self.featurize(subnet)])[0])})

    def fingerprint(self) -> str:
        return self._fingerprint


@dataclass(frozen=True)
class Evaluation:
    """One real evaluation of one subnet: metric values, constraint violation, timings, or the error.

    ``violation`` is 0 when every constraint holds and infinite when the
    evaluation failed; ``started_at`` is a Unix time, ``seconds`` the duration.
    """

    subnet: Subnet
    values: Mapping[str, float] = field(default_factory=dict, hash=False)
    violation: float = 0.0
    latency_samples: tuple[float, ...] = ()
    fingerprint: str = ""
    started_at: float = 0.0
    seconds: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def feasible(self) -> bool:
        return self.ok and self.violation <= 0.0

    @property
    def key(self) -> str:
        return self.subnet.key

    def minimised(self, objectives: Sequence[Objective]) -> list[float]:
        """Objective values on the smaller-is-better scale (NaN for a failed evaluation)."""
        if not self.ok:
            return [math.nan] * len(objectives)
        return [o.minimised(self.values[o.name]) for o in objectives]


@dataclass(frozen=True)
class _Outcome:
    values: dict[str, float]
    latency_samples: tuple[float, ...]
    started_at: float
    seconds: float
    error: str | None


def _measure_all(providers: tuple[ObjectiveProvider, ...], subnet: Subnet) -> _Outcome:
    """Runs in a worker: every provider on one subnet; an exception becomes the outcome's error."""
    started_at, start = time.time(), time.perf_counter()
    values: dict[str, float] = {}
    samples: tuple[float, ...] = ()
    try:
        for provider in providers:
            metrics = provider.measure(subnet)
            values.update(metrics.values)
            samples = samples or tuple(float(s) for s in metrics.latency_samples)
    except ConfigError:
        raise  # a broken evaluate function is the user's bug, not this subnet's failure
    except Exception as exc:  # one subnet failing must not stop the search
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
        return _Outcome({}, (), started_at, time.perf_counter() - start, error)
    return _Outcome(values, samples, started_at, time.perf_counter() - start, None)


class Evaluator:
    """Measures batches of subnets with a set of providers, on an executor.

    Returns one :class:`Evaluation` per subnet, as each finishes. A provider
    that raises marks that subnet failed; a provider that does not return a
    metric the search needs, or returns a non-number, is a :class:`ConfigError`.
    """

    def __init__(
        self,
        providers: Sequence[ObjectiveProvider],
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
    ) -> None:
        if not providers:
            raise ConfigError("the evaluator needs at least one objective provider")
        self.providers = tuple(providers)
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints)
        self.required = tuple(
            dict.fromkeys([o.name for o in objectives] + [c.metric for c in constraints])
        )
        if all(p.provides for p in self.providers):
            offered = {m for p in self.providers for m in p.provides}
            missing = [m for m in self.required if m not in offered]
            if missing:
                raise ConfigError(
                    f"no objective provider gives {', '.join(map(repr, missing))}",
                    hint=f"providers give: {', '.join(sorted(offered))}",
                )

    @property
    def fingerprint(self) -> str:
        return "|".join(f for f in (p.fingerprint() for p in self.providers) if f)

    def evaluate(self, subnets: Sequence[Subnet], executor: Executor) -> Iterator[Evaluation]:
        """Evaluate every subnet; yields in completion order."""
        task = functools.partial(_measure_all, self.providers)
        fingerprint = self.fingerprint
        for result in executor.map_unordered(task, list(subnets)):
            subnet = subnets[result.index]
            if result.error is not None:
                yield Evaluation(
                    subnet, violation=math.inf, fingerprint=fingerprint, error=result.error
                )
                continue
            outcome: _Outcome = result.value
            if outcome.error is not None:
                yield Evaluation(
                    subnet,
                    violation=math.inf,
                    fingerprint=fingerprint,
                    started_at=outcome.started_at,
                    seconds=outcome.seconds,
                    error=outcome.error,
                )
                continue
            values = self._checked(subnet, outcome.values)
            bad = [m for m in self.required if not math.isfinite(values[m])]
            error = f"non-finite {', '.join(f'{m}={values[m]}' for m in bad)}" if bad else None
            yield Evaluation(
                subnet,
                values=values,
                violation=math.inf if bad else total_violation(values, self.constraints),
                latency_samples=outcome.latency_samples,
                fingerprint=fingerprint,
                started_at=outcome.started_at,
                seconds=outcome.seconds,
                error=error,
            )

    def _checked(self, subnet: Subnet, values: Mapping[str, Any]) -> dict[str, float]:
        missing = [m for m in self.required if m not in values]
        if missing:
            raise ConfigError(
                f"evaluating {subnet} returned no {', '.join(map(repr, missing))}",
                hint=f"it returned {sorted(values)}; the search needs {list(self.required)}",
            )
        checked: dict[str, float] = {}
        for name, value in values.items():
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                and not hasattr(value, "__float__")
            ):
                raise ConfigError(
                    f"evaluating {subnet}: metric {name!r} = {value!r} is not a number"
                )
            checked[name] = float(value)
        return checked
