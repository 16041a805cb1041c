"""Shared terminal output for CLI commands: rich tables and JSON dumps.

Commands build rows; this module decides how they look.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console = Console()
    # Piped output has no terminal width to honour: keep rows on one line each.
    console.width = console.width if console.is_terminal else 200
    console.print(table)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
