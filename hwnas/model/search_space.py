"""Declarative search spaces of named choices (genes), and canonical, hashable subnet configs.

Supernets build their space here; strategies encode and decode it. Nothing
here knows about torch: a space is plain data.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwnas.errors import ConfigError

Value = int | float | str | bool


@dataclass(frozen=True)
class Gene:
    """One named choice. ``active_if=(other, values)``: only used when gene ``other`` takes one of ``values``."""

    name: str
    choices: tuple[Value, ...]
    active_if: tuple[str, tuple[Value, ...]] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.choices:
            raise ConfigError(f"gene {self.name!r} has no choices")
        if len(set(self.choices)) != len(self.choices):
            raise ConfigError(f"gene {self.name!r} repeats a choice: {list(self.choices)}")

    @property
    def numeric(self) -> bool:
        return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in self.choices)

    def index(self, value: Value) -> int:
        try:
            return self.choices.index(value)
        except ValueError:
            # JSON turns 1.0 into 1 and back; match numbers by value.
            if self.numeric and isinstance(value, (int, float)):
                for i, choice in enumerate(self.choices):
                    if math.isclose(float(choice), float(value)):
                        return i
            raise


@dataclass(frozen=True)
class Subnet:
    """A canonical subnet config: only active genes, in space order; hashable and stable.

    Two configs that describe the same network have the same ``key``, which every
    cache and store uses.
    """

    space: str
    config: tuple[tuple[str, Value], ...]
    key: str = field(compare=False, default="")

    def __getitem__(self, name: str) -> Value:
        for gene, value in self.config:
            if gene == name:
                return value
        raise KeyError(name)

    def get(self, name: str, default: Any = None) -> Any:
        try:
            return self[name]
        except KeyError:
            return default

    def to_dict(self) -> dict[str, Value]:
        return dict(self.config)

    def to_json(self) -> str:
        return json.dumps({"space": self.space, "config": self.to_dict()}, indent=2)

    def __str__(self) -> str:
        return f"{self.space}[{self.key}]"


#: A subnet file larger than this is not a subnet (a bare config is a few hundred bytes).
MAX_SUBNET_FILE_BYTES = 1 << 20


class SearchSpace:
    """An ordered set of genes; conditional genes must come after the gene they depend on."""

    def __init__(self, name: str, genes: Sequence[Gene]) -> None:
        self.name = name
        self.genes: tuple[Gene, ...] = tuple(genes)
        self._by_name: dict[str, Gene] = {}
        for gene in self.genes:
            if gene.name in self._by_name:
                raise ConfigError(f"search space {name!r}: gene {gene.name!r} defined twice")
            if gene.active_if is not None:
                parent, values = gene.active_if
                if parent not in self._by_name:
                    raise ConfigError(
                        f"search space {name!r}: gene {gene.name!r} depends on {parent!r}, "
                        "which must be defined before it"
                    )
                if self._by_name[parent].active_if is not None:
                    raise ConfigError(
                        f"search space {name!r}: gene {gene.name!r} depends on conditional gene "
                        f"{parent!r}; only one level of conditions is supported"
                    )
                bad = [v for v in values if v not in self._by_name[parent].choices]
                if bad:
                    raise ConfigError(
                        f"gene {gene.name!r}: condition values {bad} are not choices of {parent!r}"
                    )
            self._by_name[gene.name] = gene
        blob = json.dumps(
            [[g.name, list(g.choices), g.active_if] for g in self.genes], default=list
        )
        self.signature = hashlib.sha256(f"{name}:{blob}".encode()).hexdigest()[:12]

    # -- basic facts ---------------------------------------------------------

    def __len__(self) -> int:
        return len(self.genes)

    def __iter__(self) -> Iterator[Gene]:
        return iter(self.genes)

    def gene(self, name: str) -> Gene:
        try:
            return self._by_name[name]
        except KeyError:
            raise ConfigError(
                f"search space {self.name!r} has no gene {name!r}",
                hint=f"genes: {', '.join(self._by_name)}",
            ) from None

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.genes]

    def size(self) -> int:
        """Number of distinct canonical subnets (conditional genes counted only where active)."""
        dependents: dict[str, list[Gene]] = {}
        for gene in self.genes:
            if gene.active_if is not None:
                dependents.setdefault(gene.active_if[0], []).append(gene)
        total = 1
        for gene in self.genes:
            if gene.active_if is not None:
                continue
            kids = dependents.get(gene.name)
            if not kids:
                total *= len(gene.choices)
                continue
            total *= sum(
                math.prod(len(k.choices) for k in kids if value in k.active_if[1])  # type: ignore[index]
                for value in gene.choices
            )
        return total

    def is_active(self, gene: Gene, values: Mapping[str, Value]) -> bool:
        if gene.active_if is None:
            return True
        parent, allowed = gene.active_if
        return values.get(parent) in allowed

    # -- canonical configs ---------------------------------------------------

    def subnet(self, config: Mapping[str, Any], *, where: str = "subnet config") -> Subnet:
        """Validate ``config`` and return its canonical :class:`Subnet`.

        Values of inactive genes are dropped (normalised), so equivalent configs
        compare and hash equal. Errors name the field and the allowed values.
        """
        if not isinstance(config, Mapping):
            raise ConfigError(
                f"{where}: expected a JSON object of gene: value, got {type(config).__name__}"
            )
        unknown = [k for k in config if k not in self._by_name]
        if unknown:
            raise ConfigError(
                f"{where}: unknown gene(s) {', '.join(map(repr, unknown))} for space {self.name!r}",
                hint=f"genes: {', '.join(self.names)} (see `hwnas space show`)",
            )
        canonical: dict[str, Value] = {}
        for gene in self.genes:
            if not self.is_active(gene, canonical):
                continue
            if gene.name not in config:
                raise ConfigError(
                    f"{where}: missing gene {gene.name!r}",
                    hint=f"allowed values: {list(gene.choices)}",
                )
            value = config[gene.name]
            try:
                index = gene.index(value)
            except ValueError:
                raise ConfigError(
                    f"{where}: gene {gene.name!r} = {value!r} is not allowed",
                    hint=f"allowed values: {list(gene.choices)}",
                ) from None
            canonical[gene.name] = gene.choices[index]
        items = tuple(canonical.items())
        return Subnet(space=self.name, config=items, key=self._key(items))

    def _key(self, items: tuple[tuple[str, Value], ...]) -> str:
        blob = json.dumps([self.signature, items], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def load_subnet(self, path: str | Path) -> Subnet:
        """Read a subnet JSON file: either ``{"space": ..., "config": {...}}`` or a bare config."""
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"subnet file {path} is a directory", hint="pass a SUBNET.json file")
        try:
            if path.stat().st_size > MAX_SUBNET_FILE_BYTES:
                raise ConfigError(
                    f"subnet file {path} is {path.stat().st_size:,} bytes; a subnet is a few hundred",
                    hint="pass the JSON `hwnas subnet sample` writes",
                )
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"subnet file {path} does not exist") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        except RecursionError:
            raise ConfigError(f"{path}: JSON nested too deeply to be a subnet") from None
        except OSError as exc:
            raise ConfigError(f"subnet file {path} cannot be read ({exc.strerror})") from None
        if isinstance(data, dict) and "config" in data:
            if data.get("space") not in (None, self.name):
                raise ConfigError(
                    f"{path}: subnet is for space {data['space']!r}, not {self.name!r}",
                    hint="pass the supernet this subnet was sampled from",
                )
            data = data["config"]
        return self.subnet(data, where=str(path))

    # -- sampling ------------------------------------------------------------

    def sample(self, rng: np.random.Generator | int | None = None) -> Subnet:
        rng = np.random.default_rng(rng)
        values: dict[str, Value] = {}
        for gene in self.genes:
            if self.is_active(gene, values):
                values[gene.name] = gene.choices[int(rng.integers(len(gene.choices)))]
        return self.subnet(values)

    def smallest(self) -> Subnet:
        return self._extreme(min)

    def largest(self) -> Subnet:
        return self._extreme(max)

    def _extreme(self, pick: Any) -> Subnet:
        values: dict[str, Value] = {}
        for gene in self.genes:
            if self.is_active(gene, values):
                values[gene.name] = pick(gene.choices) if gene.numeric else gene.choices[0]
        return self.subnet(values)

    # -- encodings -----------------------------------------------------------

    @property
    def upper_bounds(self) -> np.ndarray:
        """Largest index per gene (lower bounds are 0): the box of the integer encoding."""
        return np.array([len(g.choices) - 1 for g in self.genes], dtype=int)

    def encode(self, subnet: Subnet) -> np.ndarray:
        """Integer vector, one choice index per gene; inactive genes encode as 0."""
        values = subnet.to_dict()
        return np.array(
            [g.index(values[g.name]) if g.name in values else 0 for g in self.genes], dtype=int
        )

    def decode(self, vector: Iterable[int]) -> Subnet:
        """Inverse of :meth:`encode`; indices are clipped into range, inactive genes ignored."""
        vector = list(vector)
        if len(vector) != len(self.genes):
            raise ConfigError(
                f"encoded vector has {len(vector)} entries; space {self.name!r} has {len(self.genes)} genes"
            )
        values: dict[str, Value] = {}
        for gene, index in zip(self.genes, vector):
            if self.is_active(gene, values):
                values[gene.name] = gene.choices[
                    int(np.clip(int(round(index)), 0, len(gene.choices) - 1))
                ]
        return self.subnet(values)

    def feature_names(self) -> list[str]:
        names = []
        for gene in self.genes:
            if gene.numeric:
                names.append(gene.name)
            else:
                names.extend(f"{gene.name}={c}" for c in gene.choices)
        return names

    def features(self, subnet: Subnet) -> np.ndarray:
        """Feature vector for predictors: numeric genes ordinal in (0, 1], categorical one-hot; inactive 0."""
        values = subnet.to_dict()
        out: list[float] = []
        for gene in self.genes:
            present = gene.name in values
            if gene.numeric:
                out.append(
                    (gene.index(values[gene.name]) + 1) / len(gene.choices) if present else 0.0
                )
            else:
                out.extend(1.0 if present and values[gene.name] == c else 0.0 for c in gene.choices)
        return np.array(out, dtype=float)

    def features_matrix(self, subnets: Sequence[Subnet]) -> np.ndarray:
        return (
            np.stack([self.features(s) for s in subnets])
            if subnets
            else np.zeros((0, len(self.feature_names())))
        )

    def describe(self) -> list[dict[str, Any]]:
        """Genes as plain rows, for ``hwnas space show`` and JSON."""
        return [
            {
                "gene": g.name,
                "choices": list(g.choices),
                "active_if": f"{g.active_if[0]} in {list(g.active_if[1])}" if g.active_if else "",
            }
            for g in self.genes
        ]
