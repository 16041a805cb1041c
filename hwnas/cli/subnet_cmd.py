"""``hwnas subnet sample SUPERNET``: a random, smallest or largest subnet, printed as canonical JSON.

The JSON (``{"space": ..., "config": ...}``) is what ``hwnas ir`` and other commands read back.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from hwnas.cli.options import load_model, supernet_options
from hwnas.errors import ConfigError


@click.group()
def subnet() -> None:
    """Sample and inspect subnets of a supernet."""


@subnet.command("sample")
@click.argument("supernet")
@supernet_options
@click.option(
    "--smallest", is_flag=True, help="The smallest subnet (every numeric gene at its minimum)."
)
@click.option(
    "--largest", is_flag=True, help="The largest subnet (every numeric gene at its maximum)."
)
@click.option("--seed", type=int, default=None, help="Random seed (default: fresh randomness).")
@click.option(
    "--key", "with_key", is_flag=True, help="Include the subnet's canonical key in the JSON."
)
def sample(
    supernet: str,
    preset: str | None,
    settings: tuple[str, ...],
    checkpoint: Path | None,
    smallest: bool,
    largest: bool,
    seed: int | None,
    with_key: bool,
) -> None:
    """Print a subnet of SUPERNET as canonical JSON: random by default, or --smallest / --largest."""
    if smallest and largest:
        raise ConfigError("--smallest and --largest exclude each other")
    space = load_model(supernet, preset, settings, checkpoint).supernet.space
    if smallest:
        chosen = space.smallest()
    elif largest:
        chosen = space.largest()
    else:
        chosen = space.sample(seed)
    data = {"space": chosen.space, "config": chosen.to_dict()}
    if with_key:
        data["key"] = chosen.key
    click.echo(json.dumps(data, indent=2))
