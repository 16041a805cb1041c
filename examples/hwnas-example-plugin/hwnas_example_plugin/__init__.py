"""An example third-party hwnas plugin: a target preset and a ``hill-climb`` search strategy.

Everything a plugin does goes through ``hwnas.hookimpl`` functions named after
the hooks in ``hwnas.hookspecs``; copy this package to start your own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hwnas import Strategy, StrategySettings, Subnet, hookimpl


@dataclass(frozen=True)
class HillClimbSettings(StrategySettings):
    """``mutation_rate``: chance that each gene of a parent is redrawn."""

    mutation_rate: float = 0.2


class HillClimbStrategy(Strategy):
    """Mutates members of the feasible Pareto front found so far; random until something is measured."""

    name = "hill-climb"
    description = "mutate members of the current Pareto front (example plugin)"
    settings_class = HillClimbSettings

    def _ask(self, n: int) -> Sequence[Subnet]:
        parents = self._front()
        if not parents:
            return self.random_subnets(n)
        rate = self.settings.mutation_rate  # type: ignore[attr-defined]
        children: dict[str, Subnet] = {}
        for _ in range(20 * n):
            if len(children) >= n:
                break
            parent = self.space.encode(parents[int(self.rng.integers(len(parents)))].subnet)
            redraw = self.rng.random(len(parent)) < rate
            fresh = self.rng.integers(0, self.space.upper_bounds + 1)
            child = self.admissible(np.where(redraw, fresh, parent))[0]
            if not self.is_known(child.key):
                children[child.key] = child
        if len(children) < n:  # the neighbourhood is exhausted: explore elsewhere
            for subnet in self.random_subnets(n - len(children), exclude=children):
                children[subnet.key] = subnet
        return list(children.values())

    def _front(self) -> list:
        feasible = [e for e in self.history if e.feasible]
        if not feasible:
            return []
        F = self.objective_matrix(feasible)
        dominated = [
            bool(np.any(np.all(F <= F[i], axis=1) & np.any(F < F[i], axis=1)))
            for i in range(len(F))
        ]
        return [e for e, d in zip(feasible, dominated) if not d]


@hookimpl
def hwnas_register_strategies(register: Callable[..., None]) -> None:
    register(HillClimbStrategy)


@hookimpl
def hwnas_register_target_presets(register: Callable[..., None]) -> None:
    register(
        "example/ort-1thread",
        "onnxruntime:cpu?threads=1",
        "onnxruntime on the CPU pinned to one thread (from hwnas-example-plugin)",
    )
