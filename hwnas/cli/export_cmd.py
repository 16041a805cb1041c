"""``hwnas export``: compile a chosen subnet (from a search run or a JSON file) into a deployable directory."""

from __future__ import annotations

from pathlib import Path

import click

from hwnas.cli.options import tolerance_options
from hwnas.cli.output import print_table


@click.command()
@click.argument("run_dir", required=False, type=click.Path(path_type=Path))
@click.option(
    "--pick",
    default="max accuracy",
    show_default=True,
    help="Which evaluated subnet of RUN_DIR: 'max|min METRIC [where CONSTRAINT,...]'.",
)
@click.option(
    "--subnet",
    "subnet_file",
    type=click.Path(path_type=Path),
    help="Export this subnet JSON instead of picking from a run.",
)
@click.option(
    "--supernet", default=None, help="Supernet of --subnet (default: the embedded default)."
)
@click.option(
    "--preset", default=None, help="Supernet preset (with --supernet, untrained weights)."
)
@click.option(
    "--checkpoint", type=click.Path(path_type=Path), help="Supernet checkpoint of --subnet."
)
@click.option(
    "--target", "target_spec", required=True, help="Target spec or preset, e.g. tvm:llvm."
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Directory to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing artifact directory.")
@click.option(
    "--repeats",
    type=int,
    default=10,
    show_default=True,
    help="Timed repeats (as `hwnas search`'s default, so a subnet it measured is not timed again).",
)
@tolerance_options
def export(
    run_dir,
    pick,
    subnet_file,
    supernet,
    preset,
    checkpoint,
    target_spec,
    out,
    overwrite,
    repeats,
    rtol,
    atol,
) -> None:
    """Compile a subnet for a target into OUT: library, ONNX, weights, manifest.json and run.py."""
    from hwnas.cli.options import load_model, resolve_available_targets
    from hwnas.deploy.export import Pick, export_subnet
    from hwnas.errors import ConfigError
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.model.loader import from_description

    (target,) = resolve_available_targets([target_spec])
    accuracy = None
    if (run_dir is None) == (subnet_file is None):
        raise ConfigError(
            "give either RUN_DIR (a search run) or --subnet FILE", hint="see `hwnas export --help`"
        )
    if run_dir is not None:
        from hwnas.search_core.run_store import RunStore

        with RunStore.open_existing(run_dir) as store:
            meta = store.meta()
            if "model" not in meta:
                raise ConfigError(
                    f"run {run_dir} did not search a supernet, so it has nothing to export",
                    hint="export with --subnet FILE and --supernet/--checkpoint",
                )
            model = from_description(meta["model"])
            chosen = Pick.parse(pick).choose(store.evaluations(model.supernet.space))
        subnet, accuracy = chosen.subnet, chosen.values.get("accuracy")
    else:
        model = load_model(supernet, preset, (), checkpoint)
        subnet = model.supernet.space.load_subnet(subnet_file)
    click.echo(f"exporting {subnet.key} of {model.source} for {target.name} ...", err=True)
    result = export_subnet(
        model.supernet,
        model.module,
        subnet,
        target,
        out,
        protocol=MeasurementProtocol(repeats=repeats, rtol=rtol, atol=atol),
        accuracy=accuracy,
        checkpoint=model.checkpoint,
        overwrite=overwrite,
    )
    m = result.manifest
    rows = [
        ("subnet", subnet.key),
        (
            "target",
            m["target"]["spec"] + ("  (EMULATED board)" if m["latency"]["emulated"] else ""),
        ),
        (
            "latency",
            f"median {m['latency']['median_ms']:.4f} ms, p90 {m['latency']['p90_ms']:.4f} ms, cv {m['latency']['cv']:.3f}",
        ),
        ("accuracy", "" if accuracy is None else f"{accuracy:.4f}"),
        ("MACs / params", f"{m['macs']:,} / {m['params']:,}"),
        ("files", ", ".join(f["path"] for f in m["files"])),
        ("digest", result.digest),
    ]
    print_table(f"artifact written to {result.directory}", ["", ""], rows)
    click.echo(str(result.directory))
    click.echo(f"pin it with: hwnas verify {result.directory} --digest {result.digest}", err=True)
