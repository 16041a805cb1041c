"""Objectives and constraints of a search, and the multi-objective arithmetic on them.

Dominance, Pareto fronts and hypervolume live here; what an evaluation is lives
in :mod:`hwnas.search_core.evaluator`, and how a search proceeds in :mod:`hwnas.search_core.loop`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from hwnas.errors import ConfigError

Direction = Literal["min", "max"]

# unit of a metric -> the suffixes a constraint bound may carry, and their scale to that unit
_SUFFIXES: dict[str, dict[str, float]] = {
    "ms": {"": 1.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "s": 1e3},
    "count": {"": 1.0, "K": 1e3, "M": 1e6, "G": 1e9},
    "bytes": {
        "": 1.0,
        "B": 1.0,
        "K": 1e3,
        "KB": 1e3,
        "M": 1e6,
        "MB": 1e6,
        "G": 1e9,
        "GB": 1e9,
        "KiB": 1024.0,
        "MiB": 1024.0**2,
        "GiB": 1024.0**3,
    },
    "fraction": {"": 1.0, "%": 0.01},
}


@dataclass(frozen=True)
class Objective:
    """One quantity to optimise: its metric name, direction and unit.

    ``bounds`` (low, high) in the metric's own unit is an optional known range;
    when given, hypervolume is normalised by it instead of by what was measured,
    which makes hypervolumes of different runs comparable.
    """

    name: str
    direction: Direction
    unit: str = ""
    bounds: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ConfigError(
                f"objective {self.name!r}: direction must be 'min' or 'max', not {self.direction!r}"
            )
        if self.bounds is not None and not self.bounds[0] < self.bounds[1]:
            raise ConfigError(
                f"objective {self.name!r}: bounds {self.bounds} must be (low, high) with low < high"
            )

    def minimised(self, value: float) -> float:
        """The value on the "smaller is better" scale every algorithm works on."""
        return value if self.direction == "min" else -value

    def with_bounds(self, low: float, high: float) -> Objective:
        return Objective(self.name, self.direction, self.unit, (low, high))

    def format(self, value: float) -> str:
        if self.unit == "fraction":
            return f"{value:.4f}"
        if self.unit == "count":
            return f"{value / 1e6:.2f}M"
        if self.unit == "bytes":
            return f"{value / 2**20:.2f}MiB"
        return f"{value:.4g}{self.unit}"


BUILTIN_OBJECTIVES: dict[str, Objective] = {
    "accuracy": Objective("accuracy", "max", "fraction"),
    # an encoder's mean cosine similarity to the pretrained model it was distilled from
    "fidelity": Objective("fidelity", "max", "fraction"),
    "latency": Objective("latency", "min", "ms"),
    "macs": Objective("macs", "min", "count"),
    "params": Objective("params", "min", "count"),
    "peak_memory": Objective("peak_memory", "min", "bytes"),
}


def parse_objective(spec: str | Objective) -> Objective:
    """``accuracy`` (a built-in name), ``energy:min`` / ``score:max`` (a custom metric), an
    :class:`Objective`, or a built-in qualified by where it is measured: ``latency@raspi4``
    (also written ``latency:raspi4``) is a latency in ms, minimised, named ``latency@raspi4``."""
    if isinstance(spec, Objective):
        return spec
    text = spec.strip()
    name, _, direction = text.partition(":")
    base, at, qualifier = name.partition("@")
    if direction and direction not in ("min", "max") and not at and name in BUILTIN_OBJECTIVES:
        base, at, qualifier, direction = name, "@", direction, ""
    if at:
        if base not in BUILTIN_OBJECTIVES or not _QUALIFIER.match(qualifier):
            raise ConfigError(
                f"objective {text!r}: only a built-in metric takes a qualifier, as in 'latency@raspi4'",
                hint=f"built-in: {', '.join(BUILTIN_OBJECTIVES)}",
            )
        builtin = BUILTIN_OBJECTIVES[base]
        return Objective(f"{base}@{qualifier}", direction or builtin.direction, builtin.unit)  # type: ignore[arg-type]
    if not direction:
        if name in BUILTIN_OBJECTIVES:
            return BUILTIN_OBJECTIVES[name]
        raise ConfigError(
            f"unknown objective {name!r}",
            hint=f"built-in: {', '.join(BUILTIN_OBJECTIVES)}; for your own metric write '{name}:min' or '{name}:max'",
        )
    if direction not in ("min", "max"):
        raise ConfigError(f"objective {text!r}: direction after ':' must be 'min' or 'max'")
    unit = BUILTIN_OBJECTIVES[name].unit if name in BUILTIN_OBJECTIVES else ""
    return Objective(name, direction, unit)  # type: ignore[arg-type]


def parse_objectives(specs: str | Iterable[str | Objective]) -> tuple[Objective, ...]:
    """A comma-separated string or a sequence of specs; at least one, no name twice."""
    items = [s for s in specs.split(",") if s.strip()] if isinstance(specs, str) else list(specs)
    objectives = tuple(parse_objective(s) for s in items)
    if not objectives:
        raise ConfigError("no objectives given", hint="e.g. accuracy,latency")
    names = [o.name for o in objectives]
    if len(set(names)) != len(names):
        raise ConfigError(f"objective listed twice: {names}")
    return objectives


_QUALIFIER = re.compile(r"^[A-Za-z0-9_.-]+$")
_CONSTRAINT = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.-]*(?:@[\w.-]+)?)\s*(?P<op><=|>=)\s*"
    r"(?P<number>[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<suffix>[A-Za-zµ%]*)\s*$"
)


@dataclass(frozen=True)
class Constraint:
    """``metric <= bound`` or ``metric >= bound``, the bound in the metric's own unit."""

    metric: str
    op: Literal["<=", ">="]
    bound: float
    text: str = ""

    @classmethod
    def parse(cls, text: str, units: Mapping[str, str] | None = None) -> Constraint:
        """Parse ``latency<=5ms``, ``macs<=50M``, ``accuracy>=0.9`` or ``accuracy>=90%``.

        ``units`` maps metric names to their unit (built-in objectives' units are
        known); a metric with no known unit takes only a plain number.
        """
        match = _CONSTRAINT.match(text)
        if match is None:
            raise ConfigError(
                f"cannot read constraint {text!r}",
                hint="write METRIC<=NUMBER[UNIT] or METRIC>=NUMBER[UNIT], e.g. 'latency<=5ms', 'macs<=50M', 'accuracy>=0.9'",
            )
        metric, op, suffix = match["metric"], match["op"], match["suffix"]
        known = {name: o.unit for name, o in BUILTIN_OBJECTIVES.items()} | dict(units or {})
        unit = known.get(metric, known.get(metric.partition("@")[0], ""))
        scales = _SUFFIXES.get(unit, {"": 1.0})
        if suffix not in scales:
            allowed = ", ".join(s for s in scales if s) or "none (a plain number)"
            raise ConfigError(
                f"constraint {text!r}: unit {suffix!r} does not fit {metric!r}"
                + (f" (measured in {unit})" if unit else ""),
                hint=f"units allowed for {metric}: {allowed}",
            )
        bound = float(match["number"]) * scales[suffix]
        if not math.isfinite(bound):
            raise ConfigError(f"constraint {text!r}: bound is not a finite number")
        return cls(metric, op, bound, text.strip())  # type: ignore[arg-type]

    def slack(self, value: float) -> float:
        """Signed, bound-relative distance to the limit: <= 0 satisfied, > 0 violated (pymoo's ``G``)."""
        scale = abs(self.bound) if self.bound != 0 else 1.0
        return (value - self.bound) / scale if self.op == "<=" else (self.bound - value) / scale

    def violation(self, value: float) -> float:
        return max(0.0, self.slack(value))

    def __str__(self) -> str:
        return self.text or f"{self.metric}{self.op}{self.bound:g}"


def parse_constraints(
    specs: Iterable[str | Constraint], objectives: Sequence[Objective] = ()
) -> tuple[Constraint, ...]:
    units = {o.name: o.unit for o in objectives}
    return tuple(c if isinstance(c, Constraint) else Constraint.parse(c, units) for c in specs)


def total_violation(values: Mapping[str, float], constraints: Sequence[Constraint]) -> float:
    """Sum of bound-relative violations: 0 when every constraint holds."""
    return float(sum(c.violation(values[c.metric]) for c in constraints))


# -- dominance and fronts ---------------------------------------------------------


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Rows of the minimisation matrix ``F`` that no other row dominates (the first of identical rows kept)."""
    F = np.asarray(F, dtype=float)
    n = len(F)
    keep = np.zeros(n, dtype=bool)
    if n == 0:
        return keep
    # In lexicographic order no row can dominate an earlier one, so one pass
    # against the front kept so far decides each row.
    order = np.lexsort((np.arange(n), *(F[:, j] for j in reversed(range(F.shape[1])))))
    front = np.empty_like(F)
    size = 0
    for i in order:
        if size and np.any(np.all(front[:size] <= F[i], axis=1)):
            continue
        keep[i] = True
        front[size] = F[i]
        size += 1
    return keep


def constrained_ranks(F: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Deb's constrained domination as ranks: feasible rows by non-dominated front (0, 1, ...),
    then infeasible rows after all of them, ordered by violation."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    F = np.asarray(F, dtype=float)
    violation = np.asarray(violation, dtype=float)
    ranks = np.zeros(len(F), dtype=float)
    feasible = violation <= 0
    if feasible.any():
        ranks[feasible] = NonDominatedSorting().do(F[feasible], return_rank=True)[1]
    if (~feasible).any():
        start = ranks[feasible].max() + 1 if feasible.any() else 0
        order = np.argsort(np.argsort(violation[~feasible], kind="stable"), kind="stable")
        ranks[~feasible] = start + order
    return ranks


def crowding_distance(F: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance within one set of points (boundary points infinite)."""
    F = np.asarray(F, dtype=float)
    n, m = F.shape
    if n <= 2:
        return np.full(n, np.inf)
    distance = np.zeros(n)
    for j in range(m):
        order = np.argsort(F[:, j], kind="stable")
        span = F[order[-1], j] - F[order[0], j]
        distance[order[0]] = distance[order[-1]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (F[order[2:], j] - F[order[:-2], j]) / span
    return distance


def normalisation_bounds(
    objectives: Sequence[Objective], F: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, nadir) on the minimisation scale: declared bounds where given, else the range of ``F``."""
    lower = np.zeros(len(objectives))
    upper = np.ones(len(objectives))
    for j, objective in enumerate(objectives):
        if objective.bounds is not None:
            a, b = (objective.minimised(v) for v in objective.bounds)
            lower[j], upper[j] = min(a, b), max(a, b)
        elif len(F):
            lower[j], upper[j] = float(np.min(F[:, j])), float(np.max(F[:, j]))
    upper = np.where(upper > lower, upper, lower + 1.0)
    return lower, upper


def hypervolume(F: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> float:
    """Hypervolume of minimisation points normalised to [0, 1] by (lower, upper), reference point 1.

    Points outside the box are clipped into it first, so a point at or beyond the
    nadir contributes nothing; the result is in [0, 1].
    """
    from pymoo.indicators.hv import HV

    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return 0.0
    normalised = np.clip((F - lower) / (upper - lower), 0.0, 1.0)
    if normalised.shape[1] == 2:
        return _hypervolume_2d(normalised)
    return float(HV(ref_point=np.ones(F.shape[1])).do(normalised))


def _hypervolume_2d(P: np.ndarray) -> float:
    """Exact 2-D hypervolume w.r.t. (1, 1) of points in the unit box: a sort and a staircase sum."""
    P = P[np.lexsort((P[:, 1], P[:, 0]))]
    best = np.minimum.accumulate(P[:, 1])
    step = np.ones(len(P), dtype=bool)
    step[1:] = P[1:, 1] < best[:-1]  # improves on every point with smaller f1: on the front
    front = P[step]
    widths = np.diff(np.append(front[:, 0], 1.0))
    return float(np.sum(widths * (1.0 - front[:, 1])))


def hypervolume_series(
    F: np.ndarray, feasible: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> np.ndarray:
    """Hypervolume after each point in order (only feasible points count): the convergence curve."""
    F = np.asarray(F, dtype=float)
    series = np.zeros(len(F))
    front = np.zeros((0, F.shape[1] if F.ndim == 2 else 0))
    current = 0.0
    for i in range(len(F)):
        if feasible[i] and not np.any(np.all(front <= F[i], axis=1)):
            candidate = np.vstack([front, F[i : i + 1]])
            front = candidate[pareto_mask(candidate)]
            current = hypervolume(front, lower, upper)
        series[i] = current
    return series
