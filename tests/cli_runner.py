"""Runs the real ``hwnas`` command in a subprocess, as a user would, for CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def run_hwnas(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 600, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "hwnas", *args],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=cwd,
    )
