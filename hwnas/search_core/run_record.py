"""What a run records about itself besides its evaluations: where and with what it ran, and how far it got.

Written into the run store's ``meta`` at the start and end of a search, read back
by the report; none of it is compared on ``--resume`` (it may change between sessions).
"""

from __future__ import annotations

import os
import platform
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Distributions whose versions change results or speed; read from metadata, never imported.
_VERSIONED = ("hwnas", "torch", "numpy", "onnxruntime", "apache-tvm", "pymoo", "scikit-learn")


def environment() -> dict[str, Any]:
    """Versions, machine and cores of this process: enough to tell two runs' set-ups apart."""
    from hwnas.measurement.host import cpu_info, package_version, usable_cores

    cpu = cpu_info()
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu["cpu"],
        "arch": cpu["arch"],
        "cores": usable_cores(),
        "machine_cores": os.cpu_count(),
        "versions": {name: package_version(name) for name in _VERSIONED},
    }


def started(budget: int) -> dict[str, Any]:
    """Meta entries for a search session that starts now (or resumes) with this total budget."""
    return {
        "budget": budget,
        "status": "running",
        "pid": os.getpid(),
        "started_at": time.time(),
        "environment": environment(),
    }


def finished(stopped_reason: str, evaluations: int) -> dict[str, Any]:
    """Meta entries for a search that returned normally (budget spent, or the strategy ran dry)."""
    return {
        "status": "finished",
        "finished_at": time.time(),
        "stopped_reason": stopped_reason,
        "finished_evaluations": evaluations,
    }


@dataclass(frozen=True)
class RunProgress:
    """How far a stored run got. ``complete`` only for a search that returned normally.

    ``state`` is ``finished``, ``running`` (its process is alive on this
    host), ``stopped`` (its process is gone: killed, interrupted or crashed)
    or ``unknown`` (a store written before runs recorded this).
    """

    state: str
    evaluations: int
    budget: int | None
    note: str

    @property
    def complete(self) -> bool:
        return self.state == "finished"


def progress(meta: dict[str, Any], evaluations: int) -> RunProgress:
    """Read a run's progress from its ``meta`` and its number of stored evaluations."""
    budget = meta.get("budget")
    budget = budget if isinstance(budget, int) else None
    of = f"{evaluations} of {budget}" if budget is not None else f"{evaluations}"
    status = meta.get("status")
    if status == "finished":
        reason = meta.get("stopped_reason") or ""
        note = f"finished: {of} evaluations" + (f"; stopped early: {reason}" if reason else "")
        return RunProgress("finished", evaluations, budget, note)
    if status != "running":
        return RunProgress(
            "unknown",
            evaluations,
            budget,
            f"{evaluations} evaluations; this store does not record whether its search finished",
        )
    pid = meta.get("pid")
    host = (meta.get("environment") or {}).get("host")
    if host != socket.gethostname() or not isinstance(pid, int):
        return RunProgress(
            "running",
            evaluations,
            budget,
            f"INCOMPLETE: the search on {host} has not finished (still running there, or stopped): "
            f"{of} evaluations",
        )
    if pid != os.getpid() and _alive(pid):
        return RunProgress(
            "running",
            evaluations,
            budget,
            f"INCOMPLETE: in progress (process {pid} is still searching): {of} evaluations so far",
        )
    # Our own pid: the search is writing its reports on the way out of an error.
    why = (
        f"process {pid} is gone: killed, interrupted or crashed"
        if pid != os.getpid()
        else "it failed"
    )
    return RunProgress(
        "stopped",
        evaluations,
        budget,
        f"INCOMPLETE: the search stopped before finishing ({why}) after {of} evaluations; "
        "continue it with --resume",
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:  # a killed child its parent has not reaped yet still answers kill(0)
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
