"""Free statistics of a supernet's subnets: IR counts, the per-kernel LUT sum on a target, zero-cost proxies.

Each costs real time per subnet (an IR is built, proxies run a backward pass),
so the statistics say they are not cheap and LINAS computes them for a
shortlist only; every subnet's row is computed once and kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from hwnas.errors import ConfigError
from hwnas.model.search_space import Subnet
from hwnas.search_core.free_statistics import FreeStatistics

if TYPE_CHECKING:
    import torch

    from hwnas.measurement.kernel_table import KernelTable
    from hwnas.search_core.subnet_objectives import SubnetModels

IR_STATISTICS = ("macs", "params", "peak_memory")


class SupernetStatistics(FreeStatistics):
    """``macs``, ``params``, ``peak_memory`` from the subnet's graph IR; ``lut_<metric>`` the sum of
    its kernels in a per-kernel table built on the target (``hwnas lut build``); and the named
    zero-cost proxies (:mod:`hwnas.model.zero_cost`) on one minibatch ``batch``.

    A kernel missing from the table makes the LUT sum unknown for that subnet; it
    then counts the kernels the table has and the rest at the table's median, so
    one unseen kernel does not stop a search (extend the table to avoid it).
    """

    cheap = False

    def __init__(
        self,
        models: SubnetModels,
        *,
        kernel_table: KernelTable | None = None,
        lut_metric: str = "latency",
        proxies: Sequence[str] = (),
        batch: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> None:
        if proxies and batch is None:
            raise ConfigError("zero-cost proxies need a minibatch (batch=(x, y))")
        self.models = models
        self.kernel_table = kernel_table
        self.proxies = tuple(proxies)
        self.batch = batch
        self._lut_name = f"lut_{lut_metric}"
        self._names = (
            *IR_STATISTICS,
            *((self._lut_name,) if kernel_table is not None else ()),
            *(f"proxy_{p}" for p in self.proxies),
        )
        self._rows: dict[str, np.ndarray] = {}
        self.missing_kernels: set[str] = set()

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def compute(self, subnets: Sequence[Subnet]) -> np.ndarray:
        for subnet in subnets:
            if subnet.key not in self._rows:
                self._rows[subnet.key] = self._row(subnet)
        if not subnets:
            return np.zeros((0, len(self._names)))
        return np.stack([self._rows[s.key] for s in subnets])

    def _row(self, subnet: Subnet) -> np.ndarray:
        ir = self.models.ir(subnet)
        row = [float(ir.macs), float(ir.params), float(ir.peak_activation_bytes)]
        if self.kernel_table is not None:
            row.append(self._lut_sum([g.key for g in ir.kernel_groups]))
        if self.proxies:
            from hwnas.model.zero_cost import proxy_scores

            assert self.batch is not None
            scores = proxy_scores(
                self.models.supernet, self.models.module, subnet, self.batch, self.proxies
            )
            row += [scores[p] for p in self.proxies]
        return np.nan_to_num(np.array(row, dtype=float), nan=0.0, neginf=-1e9, posinf=1e9)

    def _lut_sum(self, keys: Sequence[str]) -> float:
        assert self.kernel_table is not None
        table = self.kernel_table.kernels
        known = [table[k] for k in keys if k in table]
        missing = [k for k in keys if k not in table]
        self.missing_kernels.update(missing)
        fill = float(np.median(list(table.values()))) if table else 0.0
        return float(sum(known) + fill * len(missing))

    def fingerprint(self) -> str:
        parts = ["supernet-statistics"]
        if self.kernel_table is not None:
            parts.append(f"lut@{self.kernel_table.fingerprint_hash}")
        if self.proxies:
            parts.append("proxies=" + ",".join(self.proxies))
        return ":".join(parts)

    def prior(self, metric: str) -> str | None:
        found = super().prior(metric)
        if found is None and metric.startswith("latency") and self.kernel_table is not None:
            return self._lut_name
        return found
