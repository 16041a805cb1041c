"""``hwnas verify``: check an artifact's manifest and files, then its outputs in an isolated worker."""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option(
    "--files-only",
    is_flag=True,
    help="Only check the manifest and files (target not reachable here).",
)
@click.option(
    "--digest",
    metavar="sha256:HEX",
    help="The digest `hwnas export` printed: any change to the manifest or a file is then caught.",
)
def verify(directory: Path, files_only: bool, digest: str | None) -> None:
    """Check an exported artifact: manifest, every file's sha256 (no strays), then outputs vs the reference."""
    from hwnas.deploy.verify import verify_artifact

    report = verify_artifact(directory, check_outputs=not files_only, digest=digest)
    for problem in report.file_problems:
        click.echo(f"TAMPERED {problem}", err=True)
    if report.file_problems:
        click.echo(
            f"{directory}: {len(report.file_problems)} problem(s) against manifest.json", err=True
        )
        sys.exit(1)
    pinned = "digest matches" if digest else f"digest {report.digest} (not pinned: pass --digest)"
    if not report.outputs_checked:
        click.echo(f"{directory}: files ok; {pinned} ({report.note})")
        return
    if not report.outputs_match:
        click.echo(
            f"{directory}: outputs DO NOT match the reference (max abs error {report.max_abs_error:.3g})",
            err=True,
        )
        sys.exit(1)
    click.echo(
        f"{directory}: files ok; {pinned}; outputs match the reference "
        f"(max abs error {report.max_abs_error:.3g}, {report.note})"
    )
