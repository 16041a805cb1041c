"""The :class:`Strategy` base class every search strategy plugin subclasses, and its typed settings.

Strategies only propose (``ask``) and learn (``tell``); measuring, storing and
deduplicating evaluations is the search loop's job (:mod:`hwnas.search_core.loop`).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from hwnas.errors import ConfigError
from hwnas.model.search_space import SearchSpace, Subnet
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.free_statistics import FreeStatistics
from hwnas.search_core.objectives import Constraint, Objective


@dataclasses.dataclass(frozen=True)
class StrategySettings:
    """Base of every strategy's settings. Subclasses add typed fields, each with a default.

    Settings are data (compared, printed, stored with the run), never ``**kwargs``.
    """

    @classmethod
    def from_strings(cls, pairs: Mapping[str, str]) -> StrategySettings:
        """Build settings from ``name -> text`` pairs (the CLI's ``--set name=value``), converting by field type."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for name, text in pairs.items():
            if name not in fields:
                raise ConfigError(
                    f"{cls.__name__} has no setting {name!r}",
                    hint=f"settings: {', '.join(fields) or 'none'}",
                )
            values[name] = _convert(text, hints[name], f"{cls.__name__}.{name}")
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _convert(text: str, hint: Any, where: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    try:
        if hint is bool:
            lowered = text.strip().lower()
            if lowered not in ("1", "0", "true", "false", "yes", "no"):
                raise ValueError(text)
            return lowered in ("1", "true", "yes")
        if hint in (int, float, str):
            return hint(text)
        if origin is tuple and args and args[-1] is Ellipsis:
            items = [t.strip() for t in text.split(",") if t.strip()]
            inner = args[0]
            if typing.get_origin(inner) is tuple:
                return tuple(
                    tuple(
                        _convert(p, a, where)
                        for p, a in zip(i.split("=", 1), typing.get_args(inner), strict=True)
                    )
                    for i in items
                )
            return tuple(_convert(i.strip(), inner, where) for i in items)
        if (
            origin in (typing.Union, types.UnionType)
            and type(None) in args
            and text.strip().lower() == "none"
        ):
            return None
        if origin in (typing.Union, types.UnionType):
            return _convert(text, next(a for a in args if a is not type(None)), where)
    except (ValueError, TypeError):
        raise ConfigError(
            f"{where}: cannot read {text!r} as {getattr(hint, '__name__', hint)}"
        ) from None
    raise ConfigError(f"{where}: settings of type {hint} cannot be given as text")


class CandidatePool:
    """A finite set of allowed subnets (a tabular benchmark, a pre-filtered space).

    Strategies that work on the integer encoding project what they generate onto
    the nearest allowed subnet (fewest differing genes) that is not yet known.
    """

    def __init__(self, space: SearchSpace, subnets: Sequence[Subnet]) -> None:
        unique = list({s.key: s for s in subnets}.values())
        if not unique:
            raise ConfigError("the candidate pool is empty")
        self.subnets = unique
        self.keys = [s.key for s in unique]
        self.encoded = np.stack([space.encode(s) for s in unique])

    def __len__(self) -> int:
        return len(self.subnets)

    def nearest(self, X: np.ndarray, known: set[str], rng: np.random.Generator) -> list[int]:
        """For each row of ``X``, the index of a nearest pool member not in ``known`` (or not chosen already)."""
        taken = np.array([k in known for k in self.keys])
        chosen: list[int] = []
        for row in np.atleast_2d(X):
            distance = (self.encoded != row).sum(axis=1).astype(float)
            distance[taken] = np.inf
            if not np.isfinite(distance).any():
                distance = (self.encoded != row).sum(axis=1).astype(float)
            ties = np.flatnonzero(distance == distance.min())
            pick = int(rng.choice(ties))
            chosen.append(pick)
            taken[pick] = True
        return chosen


class Strategy(ABC):
    """A search strategy: proposes subnets (:meth:`ask`) and learns from their evaluations (:meth:`tell`).

    Contract with the search loop:

    - ``ask(n)`` returns at most ``n`` distinct subnets, preferring ones never
      told before; an empty list means the strategy has nothing left to propose.
    - Every subnet returned by ``ask`` is passed back to ``tell`` before the next
      ``ask``, with its :class:`~hwnas.search_core.evaluator.Evaluation`: a fresh one, or the
      stored one if it had been measured already (nothing is measured twice).
      Failed evaluations are told too (``ok`` is false; treat them as infeasible).
    - ``state_dict()`` after a ``tell`` and ``load_state_dict()`` into a fresh
      instance (same arguments) continue the search exactly: the next ``ask``
      returns what the original would have returned.

    Subclasses set ``name`` and ``settings_class`` and implement :meth:`_ask`,
    and usually :meth:`_tell`, :meth:`_state` and :meth:`_load_state`. The
    objectives, constraints and ``history`` (every distinct evaluation told,
    in order) are available to them, and ``statistics``
    (:class:`~hwnas.search_core.free_statistics.FreeStatistics`) when the search
    has numbers it may compute for unmeasured subnets at no cost.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    settings_class: ClassVar[type[StrategySettings]] = StrategySettings

    def __init__(
        self,
        space: SearchSpace,
        objectives: Sequence[Objective],
        constraints: Sequence[Constraint] = (),
        seed: int = 0,
        settings: StrategySettings | None = None,
        *,
        candidates: Sequence[Subnet] | None = None,
        statistics: FreeStatistics | None = None,
    ) -> None:
        if settings is None:
            settings = self.settings_class()
        elif type(settings) is not self.settings_class:
            raise ConfigError(
                f"strategy {self.name!r} takes {self.settings_class.__name__}, not {type(settings).__name__}"
            )
        if not objectives:
            raise ConfigError(f"strategy {self.name!r} needs at least one objective")
        self.space = space
        self.objectives = tuple(objectives)
        self.constraints = tuple(constraints)
        self.seed = seed
        self.settings = settings
        self.rng = np.random.default_rng(seed)
        self.pool = CandidatePool(space, candidates) if candidates is not None else None
        self.statistics = statistics
        self.history: list[Evaluation] = []
        self._told: dict[str, Evaluation] = {}
        self._pending: dict[str, Subnet] = {}

    # -- public protocol ------------------------------------------------------

    def ask(self, n: int) -> list[Subnet]:
        """Propose up to ``n`` distinct subnets to evaluate next."""
        if n < 1:
            raise ConfigError(f"ask(n) needs n >= 1, got {n}")
        proposals: dict[str, Subnet] = {}
        for subnet in self._ask(n):
            if subnet.key not in self._pending and len(proposals) < n:
                proposals.setdefault(subnet.key, subnet)
        self._pending.update(proposals)
        return list(proposals.values())

    def tell(self, evaluations: Iterable[Evaluation]) -> None:
        """Learn from evaluations of subnets this strategy proposed (or any others)."""
        evaluations = list(evaluations)
        for evaluation in evaluations:
            self._pending.pop(evaluation.key, None)
            if evaluation.key not in self._told:
                self._told[evaluation.key] = evaluation
                self.history.append(evaluation)
        self._tell(evaluations)

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: plain data (numbers, strings, lists, dicts, arrays)."""
        return {
            "strategy": self.name,
            "settings": self.settings.as_dict(),
            "rng": self.rng.bit_generator.state,
            "told": [e.key for e in self.history],
            "own": self._state(),
        }

    def load_state_dict(
        self, state: Mapping[str, Any], evaluations: Mapping[str, Evaluation]
    ) -> None:
        """Continue from :meth:`state_dict`; ``evaluations`` maps subnet key to every stored evaluation."""
        if state.get("strategy") != self.name:
            raise ConfigError(
                f"saved state is for strategy {state.get('strategy')!r}, not {self.name!r}"
            )
        missing = [k for k in state["told"] if k not in evaluations]
        if missing:
            raise ConfigError(
                f"saved {self.name} state refers to {len(missing)} evaluation(s) the run store lacks"
            )
        self.rng.bit_generator.state = state["rng"]
        self.history = [evaluations[k] for k in state["told"]]
        self._told = {e.key: e for e in self.history}
        self._pending = {}
        self._load_state(state["own"], evaluations)

    # -- override points --------------------------------------------------------

    @abstractmethod
    def _ask(self, n: int) -> Sequence[Subnet]:
        """Return up to ``n`` subnets; the base class drops duplicates and ones already pending."""

    def _tell(self, evaluations: Sequence[Evaluation]) -> None:  # noqa: B027 - optional override
        """Learn from a batch; the base class has already added new ones to ``history``."""

    def _state(self) -> dict[str, Any]:
        """This strategy's own state beyond rng and history (plain data)."""
        return {}

    def _load_state(  # noqa: B027 - optional override
        self, own: Mapping[str, Any], evaluations: Mapping[str, Evaluation]
    ) -> None:
        """Restore what :meth:`_state` returned."""

    # -- helpers for subclasses ---------------------------------------------------

    def is_known(self, key: str) -> bool:
        """Told already, or proposed and not yet told."""
        return key in self._told or key in self._pending

    @property
    def known_keys(self) -> set[str]:
        """Keys of every subnet told or pending."""
        return set(self._told) | set(self._pending)

    def random_subnets(self, n: int, exclude: Iterable[str] = ()) -> list[Subnet]:
        """Up to ``n`` distinct uniformly random subnets not yet known (fewer only when nearly exhausted)."""
        excluded = self.known_keys | set(exclude)
        if self.pool is not None:
            free = [i for i, k in enumerate(self.pool.keys) if k not in excluded]
            picks = (
                self.rng.choice(len(free), size=min(n, len(free)), replace=False) if free else []
            )
            return [self.pool.subnets[free[int(i)]] for i in picks]
        chosen: dict[str, Subnet] = {}
        for _ in range(50 * n):
            if len(chosen) >= n:
                break
            subnet = self.space.sample(self.rng)
            if subnet.key not in excluded and subnet.key not in chosen:
                chosen[subnet.key] = subnet
        return list(chosen.values())

    def admissible(self, X: np.ndarray, exclude: Iterable[str] = ()) -> list[Subnet]:
        """Turn integer encodings into subnets: canonical, and in the candidate pool if there is one.

        With a pool, each row maps to its nearest unknown pool member; without,
        rows are decoded as they are (duplicates are left to the caller).
        """
        X = np.atleast_2d(np.asarray(X))
        if self.pool is None:
            return [self.space.decode(row) for row in X]
        picks = self.pool.nearest(X, self.known_keys | set(exclude), self.rng)
        return [self.pool.subnets[i] for i in picks]

    def objective_matrix(self, evaluations: Sequence[Evaluation]) -> np.ndarray:
        """Minimisation matrix of objective values (failed evaluations: NaN rows)."""
        return np.array([e.minimised(self.objectives) for e in evaluations], dtype=float).reshape(
            len(evaluations), len(self.objectives)
        )

    def violations(self, evaluations: Sequence[Evaluation]) -> np.ndarray:
        """Each evaluation's total constraint violation (0 feasible, infinite failed)."""
        return np.array([e.violation for e in evaluations], dtype=float)

    def constraint_slacks(
        self, evaluations: Sequence[Evaluation], failed: float = 1e6
    ) -> np.ndarray:
        """pymoo's ``G`` (<= 0 feasible): one column per constraint plus one that is ``failed`` for failures."""
        rows = []
        for e in evaluations:
            if e.ok:
                rows.append([c.slack(e.values[c.metric]) for c in self.constraints] + [-1.0])
            else:
                rows.append([failed] * (len(self.constraints) + 1))
        return np.array(rows, dtype=float).reshape(len(evaluations), len(self.constraints) + 1)
