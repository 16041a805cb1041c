"""``hwnas targets``: each registered target, available here or why not, and its fingerprint."""

from __future__ import annotations

from typing import Any

import click

from hwnas.cli.output import print_json, print_table


def target_rows() -> list[dict[str, Any]]:
    """One row per listed spec of every target kind, plus presets; never raises for one bad target."""
    from hwnas.measurement.target import TargetSpec
    from hwnas.registry import plugin_host, target_classes, target_presets

    host = plugin_host()
    rows: list[dict[str, Any]] = []
    for kind, cls in sorted(target_classes().items()):
        plugin = host.registrations("target")[kind].plugin
        for spec_text in cls.listed_specs():
            row: dict[str, Any] = {
                "target": spec_text,
                "plugin": plugin,
                "description": cls.description,
            }
            try:
                target = cls(TargetSpec.parse(spec_text))
                availability = target.available()
                row["available"] = availability.ok
                row["reason"] = availability.reason
                row["fingerprint"] = target.fingerprint() if availability.ok else {}
            except Exception as exc:  # one broken target must not hide the others
                row.update(available=False, reason=f"{type(exc).__name__}: {exc}", fingerprint={})
            rows.append(row)
    for name, preset in sorted(target_presets().items()):
        rows.append(
            {
                "target": name,
                "plugin": preset.plugin,
                "description": preset.description,
                "preset_for": preset.spec,
            }
        )
    return rows


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def targets(as_json: bool) -> None:
    """List hardware targets: whether each can run here (and why not), and its fingerprint."""
    rows = target_rows()
    if as_json:
        print_json(rows)
        return
    table = []
    for row in rows:
        if "preset_for" in row:
            table.append((row["target"], f"preset for {row['preset_for']}", row["description"]))
            continue
        status = "yes" if row["available"] else f"no: {row['reason']}"
        fingerprint = ", ".join(
            f"{k}={v}" for k, v in row["fingerprint"].items() if v not in (None, "", [], {})
        )
        table.append((row["target"], status, fingerprint or row["description"]))
    print_table("hwnas targets", ["target", "available", "fingerprint / description"], table)
