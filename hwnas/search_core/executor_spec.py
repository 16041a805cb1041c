"""Choosing an executor from a spec string (``inprocess``, ``process:N``, ``ray``, ``ray://HOST:PORT``).

The executors themselves live in :mod:`hwnas.search_core.executor` and
:mod:`hwnas.search_core.ray_executor`; this module only picks one.
"""

from __future__ import annotations

import re

from hwnas.errors import ConfigError
from hwnas.search_core.executor import Executor, InProcessExecutor, ProcessPoolExecutor


def make_executor(spec: str | Executor | None) -> Executor:
    """``None`` / ``"inprocess"`` -> in this process; ``"process"`` or ``"process:N"`` -> N pinned
    worker processes; ``"ray"`` / ``"ray:N"`` -> a local Ray cluster, ``"ray://HOST:PORT"`` (optionally
    ``...?workers=N``) -> an existing one."""
    if spec is None:
        return InProcessExecutor()
    if isinstance(spec, Executor):
        return spec
    if spec.strip().startswith("ray"):
        from hwnas.search_core.ray_executor import RayExecutor  # imports Ray only when asked

        return RayExecutor.from_spec(spec.strip())
    match = re.fullmatch(r"\s*(inprocess|process)(?::(\d+))?\s*", spec)
    if match is None:
        raise ConfigError(
            f"unknown executor {spec!r}",
            hint="use 'inprocess', 'process:N' (N worker processes), 'ray' or 'ray://HOST:PORT'",
        )
    if match[1] == "inprocess":
        if match[2]:
            raise ConfigError(f"executor {spec!r}: 'inprocess' takes no worker count")
        return InProcessExecutor()
    return ProcessPoolExecutor(int(match[2]) if match[2] else 2)
