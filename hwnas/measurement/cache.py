"""SQLite cache of measurements keyed by (model, input shape, target fingerprint, protocol).

Only successful measurements are stored; deciding the key is
:class:`hwnas.measurement.measurer.Measurer`'s job, this module only stores and finds.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hwnas.measurement.results import Measurement

CACHE_DIR_ENV = "HWNAS_CACHE_DIR"
CACHE_FILE = "measurements.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS measurements (
    key TEXT PRIMARY KEY,
    ir_key TEXT NOT NULL,
    input_shapes TEXT NOT NULL,
    target TEXT NOT NULL,
    fingerprint_hash TEXT NOT NULL,
    median_s REAL NOT NULL,
    created REAL NOT NULL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS measurements_ir ON measurements (ir_key);
"""


def default_cache_dir() -> Path:
    """``$HWNAS_CACHE_DIR``, else ``~/.cache/hwnas``."""
    configured = os.environ.get(CACHE_DIR_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "hwnas"


class MeasurementCache:
    """Measurements by key in one SQLite file; safe to share between processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path | None = None) -> None:
        path = Path(path) if path is not None else default_cache_dir() / CACHE_FILE
        if path.is_dir() or path.suffix == "":
            path = path / CACHE_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), timeout=30.0, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._db.commit()

    def __getstate__(self) -> dict[str, Any]:
        # sent to another process (a search worker): it opens its own connection
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def get(self, key: str) -> Measurement | None:
        """The measurement stored under ``key`` (marked ``cached=True``), or ``None``."""
        with self._lock:
            row = self._db.execute("SELECT data FROM measurements WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        data = json.loads(row[0])
        data["cached"] = True
        return Measurement.from_dict(data)

    def put(self, key: str, measurement: Measurement, *, target: str | None = None) -> None:
        """Store ``measurement`` under ``key`` (replacing an older one)."""
        data = measurement.to_dict()
        data["cached"] = False
        row = (
            key,
            measurement.ir_key,
            json.dumps(measurement.input_shapes),
            target or measurement.target,
            measurement.fingerprint_hash,
            measurement.median_s,
            measurement.created or time.time(),
            json.dumps(data, default=str),
        )
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?, ?, ?, ?)", row
            )
            self._db.commit()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return (
                self._db.execute("SELECT 1 FROM measurements WHERE key = ?", (key,)).fetchone()
                is not None
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM measurements").fetchone()[0])

    def for_model(self, ir_key: str) -> Iterator[Measurement]:
        """Every cached measurement of one model, on any target."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data FROM measurements WHERE ir_key = ?", (ir_key,)
            ).fetchall()
        for (text,) in rows:
            data = json.loads(text)
            data["cached"] = True
            yield Measurement.from_dict(data)

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM measurements")
            self._db.commit()

    def close(self) -> None:
        with self._lock:
            self._db.close()
