"""NAS-Bench-201 as a search problem: its cell space, accuracy and latency tables keyed by arch string, a lookup provider.

Strategies and predictors are benchmarked on it against devices nobody here
measured (HW-NAS-Bench's Raspberry Pi 4 and Pixel 3 latencies); any other
table in the same layout plugs in (:meth:`NB201Tables.from_csv`).
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hwnas.errors import ConfigError, EvaluationError
from hwnas.model.search_space import Gene, SearchSpace, Subnet
from hwnas.search_core.evaluator import Metrics, ObjectiveProvider
from hwnas.search_core.free_statistics import base_metric
from hwnas.search_core.nb201_cell import EDGES, OPS, feeding_output
from hwnas.search_core.objectives import BUILTIN_OBJECTIVES, Objective

DATA_ENV = "HWNAS_NB201_DIR"
LATENCY_FILE, ACCURACY_FILE = "latency_ms.csv", "cifar10_accuracy.csv"
LATENCY_SUFFIX = "_latency_ms"
GENES = tuple(f"node{to}_from{src}" for to, src in EDGES)


def search_space() -> SearchSpace:
    """The NAS-Bench-201 cell: 6 edges, 5 operations each (15,625 architectures)."""
    return SearchSpace(
        "nb201",
        [
            Gene(name, OPS, description=f"operation on the edge node {src} -> node {to}")
            for name, (to, src) in zip(GENES, EDGES, strict=True)
        ],
    )


def cell_ops(subnet: Subnet) -> tuple[str, ...]:
    """The six edge operations, in arch-string order."""
    return tuple(str(subnet[g]) for g in GENES)


def arch_string(subnet: Subnet) -> str:
    """NAS-Bench-201's notation, e.g. ``|nor_conv_3x3~0|+|none~0|skip_connect~1|+|...|``."""
    return "|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*cell_ops(subnet))


def ops_from_arch_string(text: str) -> tuple[str, ...]:
    tokens = [t for t in text.replace("+", "").split("|") if t]
    ops = tuple(t.split("~")[0] for t in tokens)
    if len(ops) != len(EDGES) or any(op not in OPS for op in ops):
        raise ConfigError(
            f"not a NAS-Bench-201 architecture string: {text!r}",
            hint="|op~0|+|op~0|op~1|+|op~0|op~1|op~2| with op one of " + ", ".join(OPS),
        )
    return ops


def subnet_from_arch_string(space: SearchSpace, text: str) -> Subnet:
    ops = ops_from_arch_string(text)
    return space.subnet(dict(zip(GENES, ops, strict=True)), where=f"arch string {text!r}")


def data_dir() -> Path:
    """``$HWNAS_NB201_DIR``, else ``../shared/data/nb201`` next to the repository."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nb201"


@dataclass(frozen=True)
class NB201Tables:
    """Latency per device (ms) and accuracy (a fraction), each keyed by arch string.

    ``surrogate`` counts accuracies that were filled in by
    :class:`~hwnas.search_core.nb201_surrogate.AccuracySurrogate` rather than read.
    """

    latency: dict[str, dict[str, float]] = field(hash=False)
    accuracy: dict[str, float] = field(hash=False)
    source: str = ""
    surrogate: int = 0

    @classmethod
    def load(cls, directory: str | Path | None = None) -> NB201Tables:
        """The shared tables: ``latency_ms.csv`` and ``cifar10_accuracy.csv`` in ``directory``."""
        folder = Path(directory) if directory is not None else data_dir()
        return cls.from_csv(folder / LATENCY_FILE, folder / ACCURACY_FILE)

    @classmethod
    def from_csv(cls, latency: str | Path, accuracy: str | Path) -> NB201Tables:
        """Any tables in this layout: both with an ``arch_string`` column; the latency CSV with one
        ``<device>_latency_ms`` column per device (ms); the accuracy CSV with one column whose name
        ends in ``accuracy`` (a fraction, or percent when any value exceeds 1)."""
        return _from_csv(Path(latency), Path(accuracy))

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self.latency)

    def latency_of(self, subnet: Subnet, device: str) -> float:
        return self.latency[self.device(device)][arch_string(subnet)]

    def device(self, name: str) -> str:
        if name not in self.latency:
            raise ConfigError(
                f"no NAS-Bench-201 latency table for device {name!r}",
                hint=f"devices in {self.source}: {', '.join(self.latency)}",
            )
        return name

    def complete(self) -> NB201Tables:
        """These tables with an accuracy for every cell of the latency table (the surrogate's where none was read)."""
        from hwnas.search_core.nb201_surrogate import AccuracySurrogate

        surrogate = AccuracySurrogate(
            {ops_from_arch_string(arch): value for arch, value in self.accuracy.items()}
        )
        archs = next(iter(self.latency.values())).keys()
        filled = {
            arch: self.accuracy.get(arch, surrogate(ops_from_arch_string(arch))) for arch in archs
        }
        return NB201Tables(
            self.latency, filled, self.source, sum(a not in self.accuracy for a in archs)
        )

    def candidates(self, space: SearchSpace) -> list[Subnet]:
        """The architectures with an accuracy: the space a benchmark search runs over."""
        return [subnet_from_arch_string(space, arch) for arch in sorted(self.accuracy)]

    def objectives(
        self, names: Sequence[str], subnets: Sequence[Subnet], device: str | None = None
    ) -> tuple[Objective, ...]:
        """Objectives whose bounds run from the best to the median value among ``subnets``.

        ``names``: ``accuracy``, ``latency`` (on ``device``) and ``latency@<device>``.
        Fixed bounds make hypervolumes of different runs comparable; ending them
        at the median keeps the measure on the interesting region (a point worse
        than the median architecture in any objective adds nothing), where a
        full-range box would be dominated by one huge rectangle.
        """
        import numpy as np

        provider = NB201Provider(self, latency_metrics(names, device))
        values = [provider.measure(s).values for s in subnets]
        result = []
        for name in names:
            objective = objective_for(name)
            column = np.array([v[name] for v in values])
            best = float(column.max() if objective.direction == "max" else column.min())
            median = float(np.median(column))
            result.append(objective.with_bounds(min(best, median), max(best, median)))
        return tuple(result)


def objective_for(name: str) -> Objective:
    """The built-in objective a table metric is (``latency@pixel3`` is a latency, in ms)."""
    base = base_metric(name)
    if base not in ("accuracy", "latency") or (base == "accuracy" and name != base):
        raise ConfigError(
            f"the NAS-Bench-201 tables have no {name!r}",
            hint="objectives: accuracy, latency (with --target), latency@DEVICE",
        )
    builtin = BUILTIN_OBJECTIVES[base]
    return Objective(name, builtin.direction, builtin.unit)


def latency_metrics(names: Sequence[str], device: str | None) -> dict[str, str]:
    """Latency metric name -> device: ``latency`` on ``device``, ``latency@D`` on D."""
    metrics = {}
    for name in names:
        base, _, qualifier = name.partition("@")
        if base != "latency":
            continue
        if not qualifier and device is None:
            raise ConfigError(
                "the latency objective needs a device",
                hint="pass --target raspi4 (or pixel3), or name it: latency@raspi4",
            )
        metrics[name] = qualifier or str(device)
    return metrics


@functools.lru_cache(maxsize=8)
def _from_csv(latency_file: Path, accuracy_file: Path) -> NB201Tables:
    for path in (latency_file, accuracy_file):
        if not path.is_file():
            raise ConfigError(
                f"NAS-Bench-201 table {path} not found",
                hint=f"set {DATA_ENV} to the folder holding {LATENCY_FILE} and {ACCURACY_FILE}",
            )
    latency: dict[str, dict[str, float]] = {}
    for line, row in _rows(latency_file):
        for column, text in row.items():
            if column.endswith(LATENCY_SUFFIX):
                device = column[: -len(LATENCY_SUFFIX)]
                latency.setdefault(device, {})[row["arch_string"]] = _number(
                    text, latency_file, line, column
                )
    if not latency:
        raise ConfigError(
            f"{latency_file}: no latency column",
            hint=f"name each device's column <device>{LATENCY_SUFFIX}, e.g. raspi4{LATENCY_SUFFIX}",
        )
    accuracy: dict[str, float] = {}
    column = ""
    for line, row in _rows(accuracy_file):
        column = column or next((c for c in row if c.endswith("accuracy")), "")
        if not column:
            raise ConfigError(
                f"{accuracy_file}: no accuracy column",
                hint="name it e.g. cifar10_val_accuracy (any name ending in 'accuracy')",
            )
        accuracy[row["arch_string"]] = _number(row[column], accuracy_file, line, column)
    if accuracy and max(accuracy.values()) > 1.0:
        accuracy = {arch: value / 100.0 for arch, value in accuracy.items()}
    for arch in [*accuracy, *next(iter(latency.values()))]:
        ops_from_arch_string(arch)
    return NB201Tables(latency, accuracy, f"{latency_file}, {accuracy_file}")


def _rows(path: Path) -> list[tuple[int, dict[str, str]]]:
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if "arch_string" not in (reader.fieldnames or []):
            raise ConfigError(
                f"{path}: no arch_string column",
                hint="key every row by NAS-Bench-201's arch string, |op~0|+|op~0|op~1|+|...|",
            )
        return [(i + 2, row) for i, row in enumerate(reader)]


def _number(text: str, path: Path, line: int, column: str) -> float:
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}:{line}: {column} = {text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise ConfigError(f"{path}:{line}: {column} = {text!r} is not finite")
    return value


class NB201Provider(ObjectiveProvider):
    """Looks up accuracy (a fraction) and latencies (ms) in the tables; an unknown accuracy fails that subnet.

    ``latency`` maps metric names to devices (``{"latency": "raspi4"}``, or
    ``{"latency@raspi4": "raspi4", "latency@pixel3": "pixel3"}``); a plain
    device name means ``{"latency": device}``.
    """

    def __init__(self, tables: NB201Tables, latency: str | Mapping[str, str] = "raspi4") -> None:
        metrics = {"latency": latency} if isinstance(latency, str) else dict(latency)
        self._latency = {metric: tables.latency[tables.device(d)] for metric, d in metrics.items()}
        self._devices = metrics
        self._accuracy = tables.accuracy
        self._surrogate = tables.surrogate

    @property
    def provides(self) -> tuple[str, ...]:
        return ("accuracy", *self._latency)

    def measure(self, subnet: Subnet) -> Metrics:
        arch = arch_string(subnet)
        if arch not in self._accuracy:
            raise EvaluationError(f"NAS-Bench-201 has no CIFAR-10 accuracy for {arch}")
        return Metrics(
            {"accuracy": self._accuracy[arch]}
            | {metric: table[arch] for metric, table in self._latency.items()}
        )

    def fingerprint(self) -> str:
        devices = ",".join(f"{m}={d}" for m, d in self._devices.items())
        return f"nb201-tables:{devices}" + (":surrogate" if self._surrogate else "")


# -- per-kernel view, for the kernel-lut predictor --------------------------------

BASE_KERNEL = "network"


def kernel_keys(subnet: Subnet) -> list[str]:
    """The "kernels" of an architecture: the network around the cells, and each edge's operation
    at its position, ``none`` where the edge does not feed the output (dead ends do not run)."""
    return cell_kernel_keys(cell_ops(subnet))


def cell_kernel_keys(ops: Sequence[str]) -> list[str]:
    """:func:`kernel_keys` of the cell with edge operations ``ops``."""
    kept = {(e.target, e.source) for e in feeding_output(ops)}
    return [BASE_KERNEL] + [
        f"{gene}:{op if edge in kept else 'none'}"
        for gene, edge, op in zip(GENES, EDGES, ops, strict=True)
    ]


def kernel_measurer(tables: NB201Tables, device: str) -> Callable[[str], float]:
    """``measure_kernel(key) -> ms`` from real measurements, the way a LUT is built on a device:

    an edge operation's latency is measured in context, as the latency of the
    all-``skip_connect`` network with that one edge changed, minus the
    all-``skip_connect`` network (so a skip costs 0 and ``none`` may be negative);
    the surrounding network is the all-``skip_connect`` network itself. The sum of
    an architecture's kernels counts that reference timing with weight -5, so its
    noise is a shared offset that a kernel-lut correction must remove.
    """
    space = search_space()
    reference = {g: "skip_connect" for g in GENES}
    tables.device(device)

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


def every_kernel() -> list[str]:
    """Every kernel key of the space: what a complete table for one device holds."""
    return [BASE_KERNEL] + [f"{gene}:{op}" for gene in GENES for op in OPS]
