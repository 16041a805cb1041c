"""The ``random`` strategy: uniform sampling of subnets never proposed before; the baseline to beat.

It ignores what it is told; constraints only shape the front the search reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import hwnas
from hwnas import Strategy, Subnet


class RandomStrategy(Strategy):
    """Uniformly random distinct subnets (from the candidate pool if one is given)."""

    name = "random"
    description = "uniform random sampling without repeats (baseline)"

    def _ask(self, n: int) -> Sequence[Subnet]:
        return self.random_subnets(n)


@hwnas.hookimpl
def hwnas_register_strategies(register: Any) -> None:
    register(RandomStrategy)
