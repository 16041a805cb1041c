"""The ``evolution`` strategy: regularized (aging) evolution, multi-objective by constrained non-dominated rank.

Real et al. 2019: tournament on a sample of the population, mutate the winner,
and the oldest member (not the worst) leaves; winners are ranked by Deb's
constrained domination and crowding instead of a single fitness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import hwnas
from hwnas import (
    ConfigError,
    Evaluation,
    Strategy,
    StrategySettings,
    Subnet,
    constrained_ranks,
    crowding_distance,
)


@dataclass(frozen=True)
class EvolutionSettings(StrategySettings):
    """``population_size`` members kept (oldest leave first); ``sample_size`` drawn per tournament;
    ``mutation_genes`` genes changed per child (more when that only finds known subnets)."""

    population_size: int = 30
    sample_size: int = 8
    mutation_genes: int = 1


class EvolutionStrategy(Strategy):
    """Aging evolution: random until the population is full, then mutated tournament winners."""

    name = "evolution"
    description = "regularized (aging) evolution, constrained non-dominated tournaments"
    settings_class = EvolutionSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        s: EvolutionSettings = self.settings  # type: ignore[assignment]
        if (
            s.population_size < 2
            or not 1 <= s.sample_size <= s.population_size
            or s.mutation_genes < 1
        ):
            raise ConfigError(
                f"evolution: need population_size >= 2, 1 <= sample_size <= population_size, mutation_genes >= 1; got {s}"
            )
        self.population: list[Evaluation] = []

    def _ask(self, n: int) -> Sequence[Subnet]:
        s: EvolutionSettings = self.settings  # type: ignore[assignment]
        if len(self.population) < s.population_size:
            return self.random_subnets(n)
        score = self._scores()
        children: list[Subnet] = []
        for _ in range(n):
            sample = self.rng.choice(len(self.population), size=s.sample_size, replace=False)
            parent = self.population[int(min(sample, key=lambda i: score[i]))].subnet
            child = self._mutate(parent, exclude={c.key for c in children})
            if child is not None:
                children.append(child)
        if len(children) < n:
            children += self.random_subnets(n - len(children), exclude={c.key for c in children})
        return children

    def _scores(self) -> list[tuple[float, float]]:
        """(constrained rank, -crowding) per member: smaller is better."""
        F = self.objective_matrix(self.population)
        violation = self.violations(self.population)
        ranks = constrained_ranks(np.nan_to_num(F), violation)
        crowding = np.zeros(len(F))
        for rank in np.unique(ranks):
            members = np.flatnonzero(ranks == rank)
            crowding[members] = crowding_distance(np.nan_to_num(F[members]))
        return [(float(r), -float(c)) for r, c in zip(ranks, crowding, strict=True)]

    def _mutate(self, parent: Subnet, exclude: set[str]) -> Subnet | None:
        s: EvolutionSettings = self.settings  # type: ignore[assignment]
        base = self.space.encode(parent)
        upper = self.space.upper_bounds
        mutable = np.flatnonzero(upper > 0)
        if mutable.size == 0:
            return None
        for attempt in range(60):
            genes = min(mutable.size, s.mutation_genes + attempt // 20)
            row = base.copy()
            for g in self.rng.choice(mutable, size=genes, replace=False):
                row[g] = (row[g] + 1 + self.rng.integers(upper[g])) % (upper[g] + 1)
            child = self.admissible(row, exclude=exclude)[0]
            if not self.is_known(child.key) and child.key not in exclude:
                return child
        return None

    def _tell(self, evaluations: Sequence[Evaluation]) -> None:
        s: EvolutionSettings = self.settings  # type: ignore[assignment]
        members = {e.key for e in self.population}
        for evaluation in evaluations:
            if evaluation.key not in members:
                self.population.append(evaluation)
                members.add(evaluation.key)
        del self.population[: max(0, len(self.population) - s.population_size)]

    def _state(self) -> dict[str, Any]:
        return {"population": [e.key for e in self.population]}

    def _load_state(self, own: Mapping[str, Any], evaluations: Mapping[str, Evaluation]) -> None:
        self.population = [evaluations[k] for k in own["population"]]


@hwnas.hookimpl
def hwnas_register_strategies(register: Any) -> None:
    register(EvolutionStrategy)
