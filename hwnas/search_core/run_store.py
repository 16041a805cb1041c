"""The run store: one SQLite file in the run directory holding every evaluation and the strategy's state.

Each evaluation is committed the moment it is finished, so a killed search
loses nothing; report files (CSV, JSON, plots) are written elsewhere from it.
A store may come from anyone: nothing in it is unpickled or executed.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from hwnas.model.search_space import SearchSpace
from hwnas.search_core.evaluator import Evaluation
from hwnas.search_core.state_codec import decode_state, encode_state

FILENAME = "search.sqlite"
LOCK_FILE = ".search.lock"

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
# strategy_state.state holds JSON text (state_codec); stores written before held a pickle,
# which is recognised by its first byte and never loaded.
_PICKLE_PREFIX = 0x80


class RunStore:
    """Evaluations and strategy state of one search run, in ``<run dir>/search.sqlite`` (or in memory).

    ``meta`` records what the run is (space, objectives, constraints, strategy,
    settings, seed, target fingerprint); :meth:`check_meta` refuses to resume
    a run with different ones, since mixing them would corrupt the front.
    """

    def __init__(self, path: str | Path | None, *, lock: bool = False) -> None:
        """Open (or create) the store at ``path`` (``None``: in memory).

        ``lock=True`` is for the one process that writes the run: it takes an
        exclusive lock on the run directory, and a second writer gets a clear
        error naming the holder's PID.
        """
        self.path = None if path is None else Path(path)
        self._lock_fd: int | None = None
        if self.path is not None:
            _make_directory(self.path.parent)
            if lock:
                self._lock_fd = _lock_directory(self.path.parent)
        try:
            self._db = sqlite3.connect(":memory:" if self.path is None else str(self.path))
            if self.path is not None:
                self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            self._release()
            raise ConfigError(
                f"{self.path}: not a usable run store ({exc})", hint="choose another --out"
            ) from None

    @classmethod
    def open_existing(cls, directory: str | Path) -> RunStore:
        """Open a finished or running run's store for reading; it must exist (also on a read-only mount)."""
        directory = Path(directory)
        path = directory / FILENAME
        if not directory.is_dir():
            raise ConfigError(
                f"{directory} is not a search run directory",
                hint="pass the --out directory of `hwnas search`",
            )
        if not path.is_file():
            raise ConfigError(
                f"{directory} is not a search run (no {FILENAME})",
                hint="pass the --out directory of `hwnas search`",
            )
        store = cls.__new__(cls)
        store.path = path
        store._lock_fd = None
        try:
            store._db = connect_read_only(path)
            tables = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{path}: not a usable run store ({exc})") from None
        if not {"meta", "evaluations"} <= tables:
            store.close()
            raise ConfigError(
                f"{path} is not an hwnas run store (tables: {sorted(tables) or 'none'})"
            )
        return store

    @classmethod
    def in_directory(cls, out: str | Path | None, *, lock: bool = False) -> RunStore:
        return cls(None if out is None else Path(out) / FILENAME, lock=lock)

    def close(self) -> None:
        self._db.close()
        self._release()

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor releases the flock
            self._lock_fd = None

    def checkpoint(self) -> None:
        """Fold the WAL into the main file, so a copy of ``search.sqlite`` alone holds every evaluation."""
        if self.path is not None:
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

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
                f"INSERT OR IGNORE INTO evaluations (key, config, {', '.join(_RESULT_COLUMNS)})"
                f" VALUES (?, ?, {', '.join('?' * len(_RESULT_COLUMNS))})",
                (evaluation.key, json.dumps(evaluation.subnet.to_dict()), *_result_row(evaluation)),
            )

    def replace(self, evaluation: Evaluation) -> None:
        """Overwrite the stored evaluation of the same subnet (a retried failure), keeping its place in order."""
        with self._db:
            self._db.execute(
                f"UPDATE evaluations SET {', '.join(f'{c} = ?' for c in _RESULT_COLUMNS)} WHERE key = ?",
                (*_result_row(evaluation), evaluation.key),
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

    def save_state(self, state: Mapping[str, Any], tells: int, *, owner: str = "strategy") -> None:
        """Replace the saved strategy state (taken right after a tell), in the same commit discipline."""
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO strategy_state (id, tells, evaluations, saved_at, state) VALUES (1, ?, ?, ?, ?)",
                (tells, self.count(), time.time(), encode_state(dict(state), owner=owner)),
            )

    def load_state(self) -> tuple[dict[str, Any], int] | None:
        """The last saved strategy state and how many tells preceded it, or ``None``."""
        row = self._db.execute("SELECT state, tells FROM strategy_state WHERE id = 1").fetchone()
        if row is None:
            return None
        blob = row[0]
        if isinstance(blob, bytes) and blob[:1] == bytes([_PICKLE_PREFIX]):
            warnings.warn(
                f"{self.path}: the saved strategy state is a pickle (written by an older hwnas); "
                "it is not loaded, since unpickling runs code. The strategy restarts from the "
                "stored evaluations; nothing is measured again.",
                stacklevel=2,
            )
            return None
        state = decode_state(blob)
        if not isinstance(state, dict):
            raise ConfigError(f"{self.path}: saved strategy state is not a mapping")
        return state, int(row[1])


#: The columns an evaluation's result fills (beside its key and config), in :func:`_result_row`'s order.
_RESULT_COLUMNS = (
    "fingerprint",
    "metrics",
    "violation",
    "latency_samples",
    "started_at",
    "seconds",
    "error",
)


def _result_row(evaluation: Evaluation) -> tuple[Any, ...]:
    return (
        evaluation.fingerprint,
        json.dumps(dict(evaluation.values)),
        None if math.isinf(evaluation.violation) else evaluation.violation,
        json.dumps(list(evaluation.latency_samples)),
        evaluation.started_at or time.time(),
        evaluation.seconds,
        evaluation.error,
    )


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a store file, also while a search writes it, also on a read-only mount.

    ``immutable=1`` is needed where SQLite cannot create its -shm file (a read-only
    mount); the search checkpoints its WAL after each batch, so the main file is complete.
    """
    writable = os.access(path.parent, os.W_OK)
    uri = path.resolve().as_uri() + "?mode=ro" + ("" if writable else "&immutable=1")
    return sqlite3.connect(uri, uri=True)


def _make_directory(directory: Path) -> None:
    """Create the run directory, or say clearly why it cannot be."""
    existing = next((p for p in (directory, *directory.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise ConfigError(
            f"--out {directory}: {existing} is a file, not a directory", hint="choose another --out"
        )
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--out {directory}: cannot create it ({exc.strerror})", hint="choose another --out"
        ) from None
    if not os.access(directory, os.W_OK):
        raise ConfigError(
            f"--out {directory} is not writable", hint="choose a directory you can write to"
        )


def _lock_directory(directory: Path) -> int:
    """An exclusive lock on the run directory (held while the descriptor is open), or a ConfigError naming the holder."""
    import fcntl

    path = directory / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"run directory {directory} is in use by another search (PID {holder})",
            hint="wait for it to finish, stop it, or choose another --out",
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
