"""The run store: one SQLite file in the run directory holding every evaluation and the strategy's state.

Each evaluation is committed the moment it is finished, so a killed search
loses nothing; report files (CSV, JSON, plots) are written elsewhere from it.
"""

from __future__ import annotations

import json
import math
import pickle
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from hwnas.model.search_space import SearchSpace
from hwnas.search_core.evaluator import Evaluation

FILENAME = "search.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS evaluations (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    config TEXT NOT NULL,
    metrics TEXT NOT NULL,
    violation REAL,
    latency_samples TEXT NOT NULL,
    started_at REAL NOT NULL,
    seconds REAL NOT NULL,
    error TEXT,
    UNIQUE (key, fingerprint)
);
CREATE TABLE IF NOT EXISTS strategy_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    tells INTEGER NOT NULL,
    evaluations INTEGER NOT NULL,
    saved_at REAL NOT NULL,
    state BLOB NOT NULL
);
"""


class RunStore:
    """Evaluations and strategy state of one search run, in ``<run dir>/search.sqlite`` (or in memory).

    ``meta`` records what the run is (space, objectives, constraints, strategy,
    settings, seed, target fingerprint); :meth:`check_meta` refuses to resume
    a run with different ones, since mixing them would corrupt the front.
    """

    def __init__(self, path: str | Path | None) -> None:
        self.path = None if path is None else Path(path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(":memory:" if self.path is None else str(self.path))
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(
                f"{self.path}: not a usable run store ({exc})", hint="choose another --out"
            ) from None

    @classmethod
    def in_directory(cls, out: str | Path | None) -> RunStore:
        return cls(None if out is None else Path(out) / FILENAME)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta -------------------------------------------------------------------

    def meta(self) -> dict[str, Any]:
        return {
            name: json.loads(value)
            for name, value in self._db.execute("SELECT name, value FROM meta")
        }

    def set_meta(self, meta: Mapping[str, Any]) -> None:
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)",
                [(k, json.dumps(v, sort_keys=True)) for k, v in meta.items()],
            )

    def check_meta(self, expected: Mapping[str, Any]) -> None:
        """Raise :class:`ConfigError` naming every field where the stored run differs from ``expected``."""
        stored = self.meta()
        normalised = json.loads(json.dumps(dict(expected), sort_keys=True))
        different = [k for k, v in normalised.items() if k in stored and stored[k] != v]
        if different:
            details = "; ".join(
                f"{k}: stored {stored[k]!r}, now {normalised[k]!r}" for k in different
            )
            raise ConfigError(
                f"run store {self.path} holds a different search ({details})",
                hint="resume with the same settings, or choose another --out for a new search",
            )

    # -- evaluations ----------------------------------------------------------------

    def add(self, evaluation: Evaluation) -> None:
        """Store and commit one evaluation (a second one of the same subnet and fingerprint is ignored)."""
        with self._db:
            self._db.execute(
                "INSERT OR IGNORE INTO evaluations (key, fingerprint, config, metrics, violation, latency_samples,"
                " started_at, seconds, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    evaluation.key,
                    evaluation.fingerprint,
                    json.dumps(evaluation.subnet.to_dict()),
                    json.dumps(dict(evaluation.values)),
                    None if math.isinf(evaluation.violation) else evaluation.violation,
                    json.dumps(list(evaluation.latency_samples)),
                    evaluation.started_at or time.time(),
                    evaluation.seconds,
                    evaluation.error,
                ),
            )

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0])

    def evaluations(self, space: SearchSpace) -> list[Evaluation]:
        """Every stored evaluation in the order it was made, subnets rebuilt (and checked) against ``space``."""
        rows = self._db.execute(
            "SELECT key, fingerprint, config, metrics, violation, latency_samples, started_at, seconds, error"
            " FROM evaluations ORDER BY seq"
        ).fetchall()
        result = []
        for (
            key,
            fingerprint,
            config,
            metrics,
            violation,
            samples,
            started_at,
            seconds,
            error,
        ) in rows:
            subnet = space.subnet(json.loads(config), where=f"{self.path}: stored subnet {key}")
            if subnet.key != key:
                raise ConfigError(
                    f"{self.path}: stored subnet {key} has key {subnet.key} in space {space.name!r} as defined now",
                    hint="the search space changed since this run; start a new run with another --out",
                )
            result.append(
                Evaluation(
                    subnet=subnet,
                    values=json.loads(metrics),
                    violation=math.inf if violation is None else float(violation),
                    latency_samples=tuple(json.loads(samples)),
                    fingerprint=fingerprint,
                    started_at=started_at,
                    seconds=seconds,
                    error=error,
                )
            )
        return result

    # -- strategy state ------------------------------------------------------------------

    def save_state(self, state: Mapping[str, Any], tells: int) -> None:
        """Replace the saved strategy state (taken right after a tell), in the same commit discipline."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO strategy_state (id, tells, evaluations, saved_at, state) VALUES (1, ?, ?, ?, ?)",
                (tells, self.count(), time.time(), pickle.dumps(dict(state), protocol=4)),
            )

    def load_state(self) -> tuple[dict[str, Any], int] | None:
        """The last saved strategy state and how many tells preceded it, or ``None``."""
        row = self._db.execute("SELECT state, tells FROM strategy_state WHERE id = 1").fetchone()
        if row is None:
            return None
        return pickle.loads(row[0]), int(row[1])
