"""What ``hwnas report`` reads: a search run directory (its store, opened read-only) or a ``hwnas bench`` JSON.

Reading never writes, needs no search space (configs stay plain gene dicts)
and turns anything unreadable into a :class:`~hwnas.errors.ConfigError`; the page is built elsewhere.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from hwnas.model.search_space import Subnet
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.run_record import RunProgress, progress
from hwnas.search_core.run_store import FILENAME, connect_read_only

_HINT = "give the --out directory of `hwnas search` (or its search.sqlite), or a `hwnas bench --json` file"


@dataclass(frozen=True)
class StoredRun:
    """A search run directory as read: its meta, every evaluation in order, and how far it got.

    Subnets are rebuilt from the stored gene values and keys without the search
    space (a user's own space cannot be rebuilt from a store), so nothing is re-validated.
    """

    path: Path
    meta: dict[str, Any] = field(hash=False)
    evaluations: tuple[Evaluation, ...]
    progress: RunProgress

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class BenchDocument:
    """A ``hwnas bench --json`` file: the model measured, the protocol, and one row per target."""

    path: Path
    model: dict[str, Any] = field(hash=False)
    protocol: dict[str, Any] = field(hash=False)
    results: tuple[dict[str, Any], ...] = field(hash=False)

    @property
    def name(self) -> str:
        return self.path.name


ReportInput = StoredRun | BenchDocument


def read_input(path: str | Path) -> ReportInput:
    """A run directory, a ``search.sqlite`` file, or a bench JSON file, read and checked."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file or directory", hint=_HINT)
    if path.is_dir():
        store = path / FILENAME
        if not store.is_file():
            raise ConfigError(f"{path} is not a search run directory (no {FILENAME})", hint=_HINT)
        return read_run(store)
    if path.suffix == ".json":
        return read_bench(path)
    return read_run(path)


def read_run(store: Path) -> StoredRun:
    """Every evaluation and the meta of the store at ``store``, read without writing (also mid-search)."""
    db = _connect(store)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"meta", "evaluations"} <= tables:
            raise ConfigError(
                f"{store} is not an hwnas run store (tables: {', '.join(sorted(tables)) or 'none'})",
                hint=_HINT,
            )
        meta = {
            name: _json(value, store, f"meta {name!r}")
            for name, value in db.execute("SELECT name, value FROM meta")
        }
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM evaluations ORDER BY seq").fetchall()
    except sqlite3.DatabaseError as exc:
        raise ConfigError(
            f"{store}: the run store is corrupt or unreadable ({exc})", hint=_HINT
        ) from None
    finally:
        db.close()
    space = str(meta.get("space", "")).partition("@")[0]
    evaluations = tuple(_evaluation(row, space, store) for row in rows)
    directory = store.parent
    return StoredRun(directory, meta, evaluations, progress(meta, len(evaluations)))


def _connect(store: Path) -> sqlite3.Connection:
    try:
        return connect_read_only(store)
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"{store}: cannot open the run store ({exc})", hint=_HINT) from None


def _json(text: Any, store: Path, where: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{store}: {where} is not valid JSON ({str(text)[:60]!r})",
            hint="the run store is damaged; rerun the search into another --out",
        ) from None


def _evaluation(row: sqlite3.Row, space: str, store: Path) -> Evaluation:
    where = f"evaluation {row['seq']}"
    config = _json(row["config"], store, f"{where} config")
    values = _json(row["metrics"], store, f"{where} metrics")
    samples = _json(row["latency_samples"], store, f"{where} latency samples")
    if not (isinstance(config, dict) and isinstance(values, dict) and isinstance(samples, list)):
        raise ConfigError(
            f"{store}: {where} does not hold a config, metrics and samples",
            hint="the run store is damaged; rerun the search into another --out",
        )
    violation = row["violation"]
    return Evaluation(
        subnet=Subnet(space, tuple(config.items()), key=str(row["key"])),
        values={str(k): float(v) for k, v in values.items() if _number(v)},
        violation=math.inf if violation is None else float(violation),
        latency_samples=tuple(float(s) for s in samples if _number(s)),
        fingerprint=str(row["fingerprint"]),
        started_at=float(row["started_at"] or 0.0),
        seconds=float(row["seconds"] or 0.0),
        error=None if row["error"] is None else str(row["error"]),
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_bench(path: Path) -> BenchDocument:
    """A ``hwnas bench --json`` file; anything else is refused with what was expected."""
    try:
        document = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{path}: not a readable JSON file ({exc})", hint=_HINT) from None
    results = document.get("results") if isinstance(document, dict) else None
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and "target" in r and "ok" in r for r in results
    ):
        raise ConfigError(
            f"{path} is not a `hwnas bench --json` result (expected 'model' and a 'results' list of targets)",
            hint=_HINT,
        )
    model = document.get("model")
    protocol = document.get("protocol")
    return BenchDocument(
        path,
        model if isinstance(model, dict) else {},
        protocol if isinstance(protocol, dict) else {},
        tuple(results),
    )
