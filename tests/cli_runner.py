"""Runs the real ``hwnas`` command in a subprocess, as a user would, for CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from typing import Any


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


def run_main(args: list[str], capsys: Any) -> tuple[int, str, str]:
    """Run ``hwnas ARGS`` in this process (fast; pytest's ``capsys`` captures): (exit code, stdout, stderr)."""
    from hwnas.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
