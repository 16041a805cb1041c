"""``hwnas lut build|show``: a per-kernel latency table (LUT) measured on a target, kept per target fingerprint.

Building it times every kernel (fused conv + norm + activation, pooling, ...)
of sampled subnets alone on the target; ``show`` lists what a table holds.
"""

from __future__ import annotations

from pathlib import Path

import click

from hwnas.cli.options import load_model, supernet_options
from hwnas.cli.output import print_json, print_table


@click.group()
def lut() -> None:
    """Per-kernel latency tables: build one on a target, show what it holds."""


@lut.command()
@click.option("--target", "-t", required=True, help="Target spec or preset, e.g. onnxruntime:cpu.")
@click.option(
    "--supernet",
    "supernet_name",
    help="Supernet whose subnets' kernels to time (default: the embedded trained one).",
)
@supernet_options
@click.option(
    "--subnets",
    type=click.IntRange(min=0),
    default=8,
    show_default=True,
    help="Random subnets sampled besides the smallest and the largest.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--repeats", type=click.IntRange(min=3), default=10, show_default=True)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Table file (default: <cache dir>/luts/<target fingerprint hash>.json, where searches find it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON.")
def build(
    target: str,
    supernet_name: str | None,
    preset: str | None,
    settings: tuple[str, ...],
    checkpoint: Path | None,
    subnets: int,
    seed: int,
    repeats: int,
    out: Path | None,
    as_json: bool,
) -> None:
    """Time every kernel of the smallest, the largest and --subnets random subnets on --target.

    Kernels already in the table are not timed again, so running it with more
    subnets extends the table. Example: hwnas lut build --target onnxruntime:cpu?threads=1
    """
    import numpy as np

    from hwnas.ir import GraphIR
    from hwnas.measurement.kernel_table import KernelTable, measure_kernels, table_path
    from hwnas.measurement.measurer import Measurer
    from hwnas.measurement.protocol import MeasurementProtocol

    loaded = load_model(supernet_name, preset, settings, checkpoint)
    measurer = Measurer(target, MeasurementProtocol(repeats=repeats))
    path = out or table_path(measurer.target)
    table = KernelTable.read(path) if path.is_file() else KernelTable.for_target(measurer.target)
    space = loaded.supernet.space
    rng = np.random.default_rng(seed)
    chosen = {s.key: s for s in [space.smallest(), space.largest()]}
    for _ in range(50 * max(subnets, 1)):
        if len(chosen) >= subnets + 2:
            break
        sample = space.sample(rng)
        chosen.setdefault(sample.key, sample)
    irs = (GraphIR.from_subnet(loaded.supernet, loaded.module, s) for s in chosen.values())
    report = measure_kernels(
        table, irs, measurer, progress=lambda kind, n: click.echo(f"timed {n}: {kind}", err=True)
    )
    table.write(path)
    summary = {
        "table": str(path),
        "target": measurer.target.label,
        "fingerprint_hash": table.fingerprint_hash,
        "subnets": report.subnets,
        "kernels_seen": report.kernels_seen,
        "kernels_measured": report.kernels_measured,
        "kernels_in_table": len(table.kernels),
        "failed": list(report.failed),
        "seconds": round(report.seconds, 1),
    }
    if as_json:
        print_json(summary)
        return
    click.echo(
        f"{path}: {len(table.kernels)} kernels for {measurer.target.label} "
        f"({report.kernels_measured} timed now, {report.kernels_seen} seen in {report.subnets} subnets, "
        f"{report.seconds:.0f} s)"
    )
    if report.failed:
        click.echo(
            f"{len(report.failed)} kernel(s) failed to compile or run: {report.failed[0]}", err=True
        )


@lut.command()
@click.option("--target", "-t", help="Show the table kept for this target.")
@click.option(
    "--file", "file", type=click.Path(dir_okay=False, path_type=Path), help="Or a table file."
)
@click.option("--json", "as_json", is_flag=True)
def show(target: str | None, file: Path | None, as_json: bool) -> None:
    """List the kernels of a table and their latencies."""
    from hwnas.errors import ConfigError
    from hwnas.measurement.kernel_table import KernelTable, table_path
    from hwnas.measurement.resolve import resolve_target

    if (target is None) == (file is None):
        raise ConfigError("give --target or --file")
    path = file if file is not None else table_path(resolve_target(target))
    table = KernelTable.read(path)
    if as_json:
        print_json(
            {
                "target": table.target,
                "fingerprint_hash": table.fingerprint_hash,
                "kernels": table.kernels,
            }
        )
        return
    rows = [
        (table.kinds.get(k, ""), f"{ms:.4f}", k)
        for k, ms in sorted(table.kernels.items(), key=lambda kv: -kv[1])
    ]
    print_table(f"{path}: {len(rows)} kernels on {table.target}", ["kind", "ms", "key"], rows)
