"""``hwnas export``: compile a chosen subnet (from a search run or a JSON file) into a deployable directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
@click.option(
    "--precision",
    type=click.Choice(["fp32", "int8"]),
    default=None,
    help="Export in this precision (default: the picked subnet's precision gene, else fp32).",
)
@click.option(
    "--calibration",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="int8 calibration examples (.npy, or .npz with x); default: the supernet's calibration split.",
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
    precision,
    calibration,
    rtol,
    atol,
) -> None:
    """Compile a subnet for a target into OUT: library, ONNX, weights, manifest.json and run.py."""
    from hwnas.cli.options import load_model, resolve_available_targets
    from hwnas.deploy.export import Pick, export_subnet
    from hwnas.errors import ConfigError
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.model.loader import from_description
    from hwnas.search_core.precision import load_calibration, precision_space

    (target,) = resolve_available_targets([target_spec])
    accuracy = None
    values: dict[str, float] = {}
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
            space = precision_space(model.supernet.space, meta.get("precisions", ["fp32"]))
            evaluations = store.evaluations(space)
        if precision is not None:  # pick among the subnets measured in that precision
            evaluations = [e for e in evaluations if e.subnet.get("precision", "fp32") == precision]
            if not evaluations:
                raise ConfigError(
                    f"run {run_dir} measured no {precision} subnets",
                    hint="search with --precision fp32,int8, or export --subnet FILE --precision int8",
                )
        chosen = Pick.parse(pick).choose(evaluations)
        subnet, accuracy, values = chosen.subnet, chosen.values.get("accuracy"), dict(chosen.values)
    else:
        model = load_model(supernet, preset, (), checkpoint)
        subnet = _file_space(model.supernet.space, subnet_file).load_subnet(subnet_file)
    wants_int8 = (precision or subnet.get("precision", "fp32")) == "int8"
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
        precision=precision,
        data=model.data() if wants_int8 else None,
        calibration=load_calibration(calibration) if calibration is not None else None,
        quality=_quality(model, values),
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
        ("precision", m["precision"]["dtype"]),
        ("accuracy", "" if accuracy is None else f"{accuracy:.4f}"),
        *(
            [(m["quality"]["metric"], f"{m['quality']['value']:.4f}")]
            if m["quality"] and m["quality"]["metric"] != "accuracy"
            else []
        ),
        ("MACs / params", f"{m['macs']:,} / {m['params']:,}"),
        ("files", ", ".join(f["path"] for f in m["files"])),
        ("digest", result.digest),
    ]
    print_table(f"artifact written to {result.directory}", ["", ""], rows)
    click.echo(str(result.directory))
    click.echo(f"pin it with: hwnas verify {result.directory} --digest {result.digest}", err=True)


def _quality(model: Any, values: dict[str, float]) -> dict[str, Any] | None:
    """The manifest's quality entry: the run's accuracy or fidelity of the subnet, and what it means."""
    metric = model.metric
    if metric not in values:
        return None
    entry: dict[str, Any] = {"metric": metric, "value": values[metric]}
    if metric == "fidelity" and model.metadata is not None:
        entry["definition"] = model.metadata.pretrained.get("fidelity")
        entry["pretrained"] = model.metadata.pretrained.get("source")
    else:
        entry["definition"] = "top-1 accuracy on the validation split (BN recalibrated)"
    return entry


def _file_space(space: Any, path: Path) -> Any:
    """The supernet's space, with the precision gene when the subnet file sets one."""
    import json

    from hwnas.search_core.precision import PRECISION_GENE, PRECISIONS, precision_space

    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return space  # load_subnet reports the unreadable file
    config = data.get("config", data) if isinstance(data, dict) else None
    has_gene = isinstance(config, dict) and PRECISION_GENE in config
    return precision_space(space, PRECISIONS) if has_gene else space
