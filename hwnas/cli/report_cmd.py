"""``hwnas report``: one self-contained HTML page from search run directories and ``hwnas bench`` JSON files.

Reading the runs and laying out the page is :mod:`hwnas.search_core.report_page`'s job.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument(
    "inputs", nargs=-1, required=True, metavar="RUN [RUN2 ...]", type=click.Path(path_type=Path)
)
@click.option(
    "--out",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("report.html"),
    show_default=True,
    help="The HTML file to write.",
)
@click.option("--title", help="Page title (default: the runs' names).")
def report(inputs: tuple[Path, ...], out: Path, title: str | None) -> None:
    """Write an HTML report of search runs (their --out directories) and `hwnas bench --json` files.

    Several runs are overlaid (fronts and hypervolume curves) to compare
    strategies or targets. The page needs no network to view. A run still in
    progress, or stopped before its budget, is reported as far as it got.

    Example: hwnas report runs/linas runs/nsga2 bench.json --out compare.html
    """
    from hwnas.search_core.report_page import write_report

    written = write_report(inputs, out, title=title)
    for view in written.incomplete:
        click.echo(f"{view.run.path}: {view.run.progress.note}", err=True)
    click.echo(f"wrote {written.path} (open it in a browser)")
