"""``hwnas space show SUPERNET``: a supernet's genes, their choices and conditions, and the space's size.

Also holds the options every supernet command shares (``--preset``, ``--set``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import click

from hwnas.cli.output import print_json, print_table
from hwnas.errors import ConfigError

if TYPE_CHECKING:
    from hwnas.model.supernet import Supernet


def supernet_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``SUPERNET`` argument plus ``--preset`` and repeatable ``--set field=value``."""
    command = click.option(
        "--set",
        "settings",
        multiple=True,
        metavar="FIELD=VALUE",
        help="Override a supernet setting (repeatable), e.g. --set num_classes=100 --set resolutions=32,48.",
    )(command)
    command = click.option(
        "--preset",
        default=None,
        help="Supernet preset, e.g. tiny or full (default: the supernet's own).",
    )(command)
    return click.argument("supernet")(command)


def parse_settings(pairs: Sequence[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(
                f"--set {pair!r}: expected FIELD=VALUE", hint="e.g. --set num_classes=100"
            )
        overrides[key.strip()] = value
    return overrides


def load_supernet(name: str, preset: str | None, settings: Sequence[str]) -> Supernet:
    """The registered supernet ``name`` built from a preset and ``--set`` overrides."""
    from hwnas.registry import supernet_class

    return supernet_class(name).configure(preset, parse_settings(settings))


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
@supernet_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def show(supernet: str, preset: str | None, settings: tuple[str, ...], as_json: bool) -> None:
    """Show SUPERNET's genes, their choices and conditions, and how many subnets the space holds."""
    net = load_supernet(supernet, preset, settings)
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
