"""Free statistics: numbers known about any subnet before it is measured (IR counts, structure, LUT sums, proxies).

Strategies may compute them for as many unmeasured candidates as they like;
predictors use them as features, and a search's first batch can be chosen on
the front they predict. Where they come from is the provider's business.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence

import numpy as np

from hwnas.errors import ConfigError
from hwnas.model.search_space import SearchSpace, Subnet

# metric -> statistics that grow with it, best first: a prediction before anything is measured
PRIORS: dict[str, tuple[str, ...]] = {
    "latency": ("lut_latency", "macs", "params"),
    "accuracy": ("accuracy_proxy", "macs", "params"),
    "macs": ("macs",),
    "params": ("params",),
    "peak_memory": ("peak_memory",),
}


def base_metric(name: str) -> str:
    """``latency`` for ``latency@raspi4``: the quantity a qualified metric measures."""
    return name.partition("@")[0]


class FreeStatistics(ABC):
    """Named per-subnet numbers that cost (almost) nothing to compute.

    Subclasses give :attr:`names` and :meth:`compute`; :meth:`prior` says which
    statistic stands in for a metric before any of it is measured. ``cheap`` is
    false when each subnet costs real time (an IR built, a backward pass): a
    strategy then computes them for a shortlist, not for thousands of candidates.
    """

    cheap: bool = True

    @property
    @abstractmethod
    def names(self) -> tuple[str, ...]:
        """Statistic names, in column order."""

    @abstractmethod
    def compute(self, subnets: Sequence[Subnet]) -> np.ndarray:
        """One row per subnet, one finite column per name."""

    def compute_encoded(self, space: SearchSpace, X: np.ndarray) -> np.ndarray:
        """:meth:`compute` for integer-encoded rows of ``space``; override when decoding thousands
        of rows into subnets would cost more than the statistics themselves."""
        return self.compute([space.decode(row) for row in np.atleast_2d(X)])

    def fingerprint(self) -> str:
        """What the numbers depend on besides the subnet (a table's version, a target)."""
        return ""

    def prior(self, metric: str) -> str | None:
        """The statistic that grows with ``metric`` (``lut_latency@raspi4`` before ``lut_latency``
        for ``latency@raspi4``), or ``None`` when none is known to."""
        base = base_metric(metric)
        qualifier = metric[len(base) :]
        for name in PRIORS.get(base, ()):
            for candidate in (name + qualifier, name):
                if candidate in self.names:
                    return candidate
        return None


class TableStatistics(FreeStatistics):
    """Statistics looked up by subnet key in a precomputed table (``key -> values in name order``)."""

    def __init__(
        self, names: Sequence[str], rows: Mapping[str, Sequence[float]], fingerprint: str = ""
    ) -> None:
        self._names = tuple(names)
        self._rows = {k: np.asarray(v, dtype=float) for k, v in rows.items()}
        bad = [k for k, v in self._rows.items() if v.shape != (len(self._names),)]
        if bad:
            raise ConfigError(
                f"statistics table: {len(bad)} row(s) do not have {len(self._names)} values",
                hint=f"first: {bad[0]}",
            )
        self._fingerprint = fingerprint

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def compute(self, subnets: Sequence[Subnet]) -> np.ndarray:
        missing = [s for s in subnets if s.key not in self._rows]
        if missing:
            raise ConfigError(
                f"no free statistics for {len(missing)} subnet(s), e.g. {missing[0]}",
                hint="the statistics table must cover every subnet the search may propose",
            )
        if not subnets:
            return np.zeros((0, len(self._names)))
        return np.stack([self._rows[s.key] for s in subnets])

    def fingerprint(self) -> str:
        return self._fingerprint
