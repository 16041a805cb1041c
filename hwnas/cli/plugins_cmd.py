"""``hwnas plugins``: every loaded or broken plugin, what it provides, and its status."""

from __future__ import annotations

import click

from hwnas.cli.output import print_json, print_table
from hwnas.hookspecs import REGISTER_HOOKS


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def plugins(as_json: bool) -> None:
    """List installed plugins (built-in and third-party), what they provide, and their status."""
    from hwnas.registry import plugin_host

    host = plugin_host()
    for kind in REGISTER_HOOKS.values():
        host.registrations(kind)  # calls the register hooks, marking plugins that fail
    infos = sorted(host.plugins.values(), key=lambda i: (not i.builtin, i.name))
    if as_json:
        print_json(
            [
                {
                    "name": i.name,
                    "package": i.package,
                    "version": i.version,
                    "builtin": i.builtin,
                    "provides": [f"{k}:{n}" for k, n in i.provides],
                    "status": i.status,
                }
                for i in infos
            ]
        )
        return
    rows = [
        (i.name, ", ".join(f"{k} {n}" for k, n in i.provides), i.package, i.version, i.status)
        for i in infos
    ]
    print_table("hwnas plugins", ["plugin", "provides", "package", "version", "status"], rows)
