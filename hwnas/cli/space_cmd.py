"""``hwnas space show SUPERNET``: a supernet's genes, their choices and conditions, and the space's size."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hwnas.cli.options import load_model, supernet_options
from hwnas.cli.output import print_json, print_table

if TYPE_CHECKING:
    from hwnas.model.supernet import Supernet


def space_summary(supernet: Supernet) -> dict[str, Any]:
    space = supernet.space
    return {
        "supernet": supernet.name,
        "arguments": supernet.arguments,
        "space": space.name,
        "signature": space.signature,
        "size": space.size(),
        "genes": space.describe(),
    }


@click.group()
def space() -> None:
    """Inspect supernet search spaces."""


@space.command("show")
@click.argument("supernet")
@supernet_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def show(
    supernet: str,
    preset: str | None,
    settings: tuple[str, ...],
    checkpoint: Path | None,
    as_json: bool,
) -> None:
    """Show SUPERNET's genes, their choices and conditions, and how many subnets the space holds."""
    net = load_model(supernet, preset, settings, checkpoint).supernet
    summary = space_summary(net)
    if as_json:
        print_json(summary)
        return
    rows = [
        (g["gene"], ", ".join(map(str, g["choices"])), g["active_if"] or "always")
        for g in summary["genes"]
    ]
    size = summary["size"]
    title = (
        f"{net.name} ({net.preset or 'custom'}): {len(rows)} genes, {size:,} subnets (~{size:.2e})"
    )
    print_table(title, ["gene", "choices", "active when"], rows)
