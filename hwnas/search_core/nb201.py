"""NAS-Bench-201 as a search problem: its cell space, the shared latency/accuracy tables, and a lookup provider.

Strategies and predictors are benchmarked on it against devices nobody here
measured (HW-NAS-Bench's Raspberry Pi 4 and Pixel 3 latencies).
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hwnas.errors import ConfigError, EvaluationError
from hwnas.model.search_space import Gene, SearchSpace, Subnet
from hwnas.search_core.evaluator import Metrics, ObjectiveProvider
from hwnas.search_core.objectives import BUILTIN_OBJECTIVES, Objective

DATA_ENV = "HWNAS_NB201_DIR"
OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
# cell edges in arch-string order: (to node, from node)
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
GENES = tuple(f"node{to}_from{src}" for to, src in EDGES)
DEVICES = {"raspi4": "raspi4_latency_ms", "pixel3": "pixel3_latency_ms"}


def search_space() -> SearchSpace:
    """The NAS-Bench-201 cell: 6 edges, 5 operations each (15,625 architectures)."""
    return SearchSpace(
        "nb201",
        [
            Gene(name, OPS, description=f"operation on the edge node {src} -> node {to}")
            for name, (to, src) in zip(GENES, EDGES, strict=True)
        ],
    )


def arch_string(subnet: Subnet) -> str:
    """NAS-Bench-201's notation, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
    ops = [subnet[g] for g in GENES]
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*ops)


def subnet_from_arch_string(space: SearchSpace, text: str) -> Subnet:
    tokens = [t for t in text.replace("+", "").split("|") if t]
    if len(tokens) != len(EDGES):
        raise ConfigError(f"not a NAS-Bench-201 architecture string: {text!r}")
    return space.subnet(
        {g: t.split("~")[0] for g, t in zip(GENES, tokens, strict=True)},
        where=f"arch string {text!r}",
    )


def data_dir() -> Path:
    """``$HWNAS_NB201_DIR``, else ``../shared/data/nb201`` next to the repository."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nb201"


@dataclass(frozen=True)
class NB201Tables:
    """Latency per device (ms, all 15,625 architectures) and CIFAR-10 accuracy (fraction, 725 of them), by arch string."""

    latency: dict[str, dict[str, float]] = field(hash=False)
    accuracy: dict[str, float] = field(hash=False)
    source: Path = Path()

    @classmethod
    def load(cls, directory: str | Path | None = None) -> NB201Tables:
        return _load(Path(directory) if directory is not None else data_dir())

    def latency_of(self, subnet: Subnet, device: str) -> float:
        return self.latency[_device_column(device)][arch_string(subnet)]

    def candidates(self, space: SearchSpace) -> list[Subnet]:
        """The architectures with a known accuracy: the space a benchmark search runs over."""
        return [subnet_from_arch_string(space, arch) for arch in sorted(self.accuracy)]

    def objectives(
        self, names: Sequence[str], device: str, subnets: Sequence[Subnet]
    ) -> tuple[Objective, ...]:
        """Built-in objectives whose bounds run from the best to the median value among ``subnets``.

        Fixed bounds make hypervolumes of different runs comparable; ending them
        at the median keeps the measure on the interesting region (a point worse
        than the median architecture in any objective adds nothing), where a
        full-range box would be dominated by one huge rectangle.
        """
        import numpy as np

        provider = NB201Provider(self, device)
        values = [provider.measure(s).values for s in subnets]
        result = []
        for name in names:
            if name not in ("accuracy", "latency"):
                raise ConfigError(
                    f"the NAS-Bench-201 tables have no {name!r}",
                    hint="objectives: accuracy, latency",
                )
            objective = BUILTIN_OBJECTIVES[name]
            column = np.array([v[name] for v in values])
            best = float(column.max() if objective.direction == "max" else column.min())
            median = float(np.median(column))
            result.append(objective.with_bounds(min(best, median), max(best, median)))
        return tuple(result)


@functools.lru_cache(maxsize=4)
def _load(directory: Path) -> NB201Tables:
    latency_file, accuracy_file = directory / "latency_ms.csv", directory / "cifar10_accuracy.csv"
    for path in (latency_file, accuracy_file):
        if not path.is_file():
            raise ConfigError(
                f"NAS-Bench-201 table {path} not found",
                hint=f"set {DATA_ENV} to the folder holding latency_ms.csv and cifar10_accuracy.csv",
            )
    latency: dict[str, dict[str, float]] = {column: {} for column in DEVICES.values()}
    with latency_file.open(newline="") as f:
        for row in csv.DictReader(f):
            for column in DEVICES.values():
                latency[column][row["arch_string"]] = float(row[column])
    with accuracy_file.open(newline="") as f:
        accuracy = {
            row["arch_string"]: float(row["cifar10_val_accuracy"]) / 100.0
            for row in csv.DictReader(f)
        }
    return NB201Tables(latency=latency, accuracy=accuracy, source=directory)


def _device_column(device: str) -> str:
    if device not in DEVICES:
        raise ConfigError(
            f"no NAS-Bench-201 latency table for device {device!r}",
            hint=f"devices: {', '.join(DEVICES)}",
        )
    return DEVICES[device]


class NB201Provider(ObjectiveProvider):
    """Looks up accuracy (fraction) and latency (ms on ``device``) in the tables; an unknown accuracy fails that subnet."""

    def __init__(self, tables: NB201Tables, device: str = "raspi4") -> None:
        self._latency = tables.latency[_device_column(device)]
        self._accuracy = tables.accuracy
        self.device = device

    @property
    def provides(self) -> tuple[str, ...]:
        return ("accuracy", "latency")

    def measure(self, subnet: Subnet) -> Metrics:
        arch = arch_string(subnet)
        if arch not in self._accuracy:
            raise EvaluationError(f"NAS-Bench-201 has no CIFAR-10 accuracy for {arch}")
        return Metrics({"accuracy": self._accuracy[arch], "latency": self._latency[arch]})

    def fingerprint(self) -> str:
        return f"nb201-tables:{self.device}"


# -- per-kernel view, for the kernel-lut predictor --------------------------------

BASE_KERNEL = "network"


def kernel_keys(subnet: Subnet) -> list[str]:
    """The "kernels" of an architecture: the network around the cells, and each edge's operation at its position."""
    return [BASE_KERNEL] + [f"{gene}:{subnet[gene]}" for gene in GENES]


def kernel_measurer(tables: NB201Tables, device: str) -> Callable[[str], float]:
    """``measure_kernel(key) -> ms`` from real measurements, the way a LUT is built on a device:

    an edge operation's latency is measured in context, as the latency of the
    all-``skip_connect`` network with that one edge changed, minus the
    all-``skip_connect`` network (so a skip costs 0 and ``none`` may be negative);
    the surrounding network is the all-``skip_connect`` network itself.
    """
    space = search_space()
    reference = {g: "skip_connect" for g in GENES}

    def latency(config: dict[str, str]) -> float:
        return tables.latency_of(space.subnet(config), device)

    def measure(key: str) -> float:
        if key == BASE_KERNEL:
            return latency(reference)
        gene, _, op = key.partition(":")
        if gene not in GENES or op not in OPS:
            raise ConfigError(f"not a NAS-Bench-201 kernel key: {key!r}")
        return latency(reference | {gene: op}) - latency(reference)

    return measure
