"""``hwnas verify``: re-hash an artifact's files and check its outputs against the reference."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--files-only", is_flag=True, help="Only re-hash the files (for a target not reachable here)."
)
def verify(directory: Path, files_only: bool) -> None:
    """Check an exported artifact: every file's sha256, then its outputs on its target vs the reference."""
    from hwnas.deploy.export import verify_artifact

    report = verify_artifact(directory, check_outputs=not files_only)
    for problem in report.file_problems:
        click.echo(f"TAMPERED {problem}", err=True)
    if report.file_problems:
        click.echo(
            f"{directory}: {len(report.file_problems)} file(s) do not match manifest.json", err=True
        )
        sys.exit(1)
    if not report.outputs_checked:
        click.echo(f"{directory}: files ok ({report.note})")
        return
    if not report.outputs_match:
        click.echo(
            f"{directory}: outputs DO NOT match the reference (max abs error {report.max_abs_error:.3g})",
            err=True,
        )
        sys.exit(1)
    click.echo(
        f"{directory}: files ok; outputs match the reference (max abs error {report.max_abs_error:.3g}, {report.note})"
    )
