"""A machine-wide lock per CPU core, so two hwnas processes never time on the same cores at once.

Two measurements overlapping on one core gave latencies up to 2.7x apart. Each
core has a lock file in the system temp folder; a measurement takes the locks
of every core it may run on, in core order (so two takers never deadlock).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

LOCK_DIR_ENV = "HWNAS_TIMING_LOCK_DIR"


def lock_dir() -> Path:
    """``$HWNAS_TIMING_LOCK_DIR``, else ``<tmp>/hwnas-timing-locks`` (shared by every user of the machine)."""
    configured = os.environ.get(LOCK_DIR_ENV)
    path = Path(configured) if configured else Path(tempfile.gettempdir()) / "hwnas-timing-locks"
    path.mkdir(mode=0o777, parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def cores_locked(cores: Iterable[int]) -> Iterator[float]:
    """Hold the timing lock of each core in ``cores``; yields the seconds spent waiting for them."""
    start = time.perf_counter()
    descriptors: list[int] = []
    try:
        for core in sorted(set(cores)):
            path = lock_dir() / f"core-{core}.lock"
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
            descriptors.append(fd)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield time.perf_counter() - start
    finally:
        for fd in reversed(descriptors):
            os.close(fd)  # closing releases the flock


def usable_core_ids() -> tuple[int, ...]:
    """The cores this process may run on (its affinity mask)."""
    try:
        return tuple(sorted(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux: one lock for the whole machine
        return (0,)
