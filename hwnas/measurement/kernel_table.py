"""Per-kernel latency tables (LUTs) built on a target and kept per target fingerprint, as Once-for-All and nn-Meter use them.

A table maps kernel keys (:attr:`hwnas.ir.kernels.KernelGroup.key`: op types,
attributes and shapes) to the median latency of that kernel compiled and timed
alone on the target. Summing a subnet's kernels estimates its latency before it
is measured; ``hwnas lut build`` fills a table from subnets of a supernet.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.errors import ConfigError
from hwnas.measurement.results import MeasurementFailure

if TYPE_CHECKING:
    from hwnas.ir import GraphIR
    from hwnas.measurement.measurer import Measurer
    from hwnas.measurement.target import Target

FORMAT = "hwnas-lut/1"


def table_path(target: Target, directory: str | Path | None = None) -> Path:
    """Where the table of ``target`` lives: ``<cache dir>/luts/<fingerprint hash>.json``."""
    from hwnas.measurement.cache import default_cache_dir

    root = Path(directory) if directory is not None else default_cache_dir() / "luts"
    return root / f"{target.fingerprint_hash()}.json"


@dataclass
class KernelTable:
    """Kernel key -> median ms on one target (identified by its fingerprint hash)."""

    target: str
    fingerprint_hash: str
    fingerprint: Mapping[str, Any] = field(default_factory=dict)
    kernels: dict[str, float] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_target(cls, target: Target, directory: str | Path | None = None) -> KernelTable:
        """The stored table of ``target``'s fingerprint, or an empty one."""
        path = table_path(target, directory)
        if path.is_file():
            table = cls.read(path)
            if table.fingerprint_hash != target.fingerprint_hash():
                raise ConfigError(
                    f"{path} holds a table for fingerprint {table.fingerprint_hash}, "
                    f"not {target.fingerprint_hash()}",
                    hint="delete the file; `hwnas lut build` rebuilds it",
                )
            return table
        return cls(target.label, target.fingerprint_hash(), target.fingerprint())

    @classmethod
    def read(cls, path: str | Path) -> KernelTable:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"kernel table {path} does not exist") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(
                f"{path} is not an hwnas kernel table (format {FORMAT})",
                hint="build one with `hwnas lut build --target T`",
            )
        kernels = data.get("kernels", {})
        bad = [k for k, v in kernels.items() if not isinstance(v, dict) or not _finite(v.get("ms"))]
        if bad:
            raise ConfigError(f"{path}: kernel {bad[0]!r} has no finite 'ms'")
        return cls(
            target=str(data.get("target", "")),
            fingerprint_hash=str(data["fingerprint_hash"]),
            fingerprint=data.get("fingerprint", {}),
            kernels={k: float(v["ms"]) for k, v in kernels.items()},
            kinds={k: str(v.get("kind", "")) for k, v in kernels.items()},
        )

    def write(self, path: str | Path) -> Path:
        """Write atomically (a temporary file renamed), so a killed build never leaves half a table."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": FORMAT,
            "target": self.target,
            "fingerprint_hash": self.fingerprint_hash,
            "fingerprint": self.fingerprint,
            "updated_at": time.time(),
            "kernels": {
                k: {"ms": ms, "kind": self.kinds.get(k, "")}
                for k, ms in sorted(self.kernels.items())
            },
        }
        temporary = path.with_suffix(f".tmp{os.getpid()}")
        temporary.write_text(json.dumps(data, indent=1, default=str))
        temporary.replace(path)
        return path

    def estimate(self, keys: Iterable[str]) -> float:
        """The lookup-table latency: the sum of the kernels' table entries (all must be known)."""
        keys = list(keys)
        missing = [k for k in keys if k not in self.kernels]
        if missing:
            raise ConfigError(
                f"kernel table for {self.target} lacks {len(missing)} kernel(s), e.g. {missing[0]}",
                hint="extend it with `hwnas lut build --target ...` over more subnets",
            )
        return float(sum(self.kernels[k] for k in keys))


@dataclass(frozen=True)
class BuildReport:
    subnets: int
    kernels_seen: int
    kernels_measured: int
    failed: tuple[str, ...]
    seconds: float


def measure_kernels(
    table: KernelTable,
    irs: Iterable[GraphIR],
    measurer: Measurer,
    progress: Callable[[str, int], None] | None = None,
) -> BuildReport:
    """Time alone, on the measurer's target, every kernel of ``irs`` not yet in ``table``."""
    start = time.perf_counter()
    seen: set[str] = set()
    measured = 0
    failed: list[str] = []
    count = 0
    for ir in irs:
        count += 1
        for group in ir.kernel_groups:
            seen.add(group.key)
            if group.key in table.kernels or group.key in failed:
                continue
            result = measurer.measure_one(ir.kernel_ir(group))
            if isinstance(result, MeasurementFailure):
                failed.append(group.key)
            else:
                table.kernels[group.key] = float(result.median_ms)
                table.kinds[group.key] = group.kind
                measured += 1
            if progress is not None:
                progress(group.kind, measured)
    return BuildReport(count, len(seen), measured, tuple(failed), time.perf_counter() - start)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == value and abs(value) != float("inf")
