"""Removing what a killed hwnas process left behind: temporary compile folders and worker logs.

Such files carry their creator's PID in their name (``<prefix>-pid<N>-...``);
one whose creator is no longer running is removed by the next process that looks.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

_PID = re.compile(r"-pid(\d+)-")


def pid_tag() -> str:
    """The part of a temporary name that records this process: ``pid<N>``."""
    return f"pid{os.getpid()}"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep(directory: Path, prefix: str) -> int:
    """Remove entries of ``directory`` named ``<prefix>...-pid<N>-...`` whose process ``N`` is gone; returns how many."""
    removed = 0
    try:
        entries = list(directory.iterdir())
    except OSError:
        return 0
    for entry in entries:
        match = _PID.search(entry.name)
        if not entry.name.startswith(prefix) or match is None or alive(int(match[1])):
            continue
        try:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except OSError:
            continue  # another sweeper got it first, or it is not ours to remove
    return removed
