"""``hwnas bench``: one model (a supernet's subnet, an ONNX file or a torch factory) measured on several targets.

Prints a table (median, p90, CV, throughput, speed-up vs the first target),
optionally JSON and a PNG chart; measuring itself is :mod:`hwnas.measurement.measurer`'s.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hwnas.cli.options import (
    load_model,
    resolve_available_targets,
    supernet_options,
    tolerance_options,
)
from hwnas.cli.output import print_table
from hwnas.errors import ConfigError

if TYPE_CHECKING:
    from hwnas.ir import GraphIR
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.measurement.results import MeasureResult
    from hwnas.measurement.target import Target


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1x3x224x224"`` (or commas) -> ``(1, 3, 224, 224)``."""
    try:
        shape = tuple(int(p) for p in text.replace(",", "x").split("x") if p.strip())
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise ConfigError(f"--shape {text!r}: expected positive dimensions like 1x3x224x224")
    return shape


def model_from_factory(reference: str, shape: tuple[int, ...] | None) -> GraphIR:
    """``package.module:factory`` returning an ``nn.Module``, or ``(module, example_inputs)``."""
    import torch

    from hwnas.ir import GraphIR

    module_name, _, attr = reference.partition(":")
    if not module_name or not attr:
        raise ConfigError(
            f"--torch {reference!r}: expected module:factory, e.g. torchvision.models:mobilenet_v2"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"--torch {reference!r}: {exc}") from None
    made = factory()
    if isinstance(made, tuple):
        module, inputs = made
        inputs = (inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)
    else:
        if shape is None:
            raise ConfigError(
                f"--torch {reference!r} returns only a module",
                hint="give --shape, e.g. 1x3x224x224",
            )
        module, inputs = made, (torch.randn(shape, generator=torch.Generator().manual_seed(0)),)
    if not isinstance(module, torch.nn.Module):
        raise ConfigError(
            f"--torch {reference!r} returned {type(module).__name__}, not a torch.nn.Module"
        )
    return GraphIR.from_module(module.eval(), inputs, name=attr)


def model_from_subnet(
    supernet: str,
    subnet_file: Path,
    preset: str | None,
    settings: Sequence[str],
    checkpoint: Path | None,
) -> GraphIR:
    from hwnas.ir import GraphIR

    loaded = load_model(supernet, preset, settings, checkpoint)
    space = loaded.supernet.space
    return GraphIR.from_subnet(loaded.supernet, loaded.module, space.load_subnet(subnet_file))


def result_rows(
    targets: Sequence[Target], results: Sequence[MeasureResult]
) -> list[dict[str, Any]]:
    """One JSON-ready row per target; speed-up is relative to the first target that measured."""
    from hwnas.measurement.results import Measurement

    base = next((r.median_s for r in results if isinstance(r, Measurement)), None)
    rows = []
    for target, result in zip(targets, results, strict=True):
        row: dict[str, Any] = {"target": target.label, "spec": target.name}
        if isinstance(result, Measurement):
            row.update(result.to_dict())
            row["target"] = target.label
            row["speedup"] = base / result.median_s if base and result.median_s > 0 else None
            row["ok"] = True
        else:
            row.update(ok=False, failure=result.kind, reason=result.reason)
        rows.append(row)
    return rows


def _table(rows: Sequence[dict[str, Any]]) -> list[tuple[Any, ...]]:
    table = []
    for row in rows:
        if not row["ok"]:
            table.append(
                (row["target"], "-", "-", "-", "-", "-", "-", f"{row['failure']}: {row['reason']}")
            )
            continue
        notes = [row["timer"]]
        if row["cached"]:
            notes.append("cached")
        if row["noisy"]:
            notes.append("noisy")
        if row["fingerprint"].get("emulated"):
            notes.append("EMULATED board")
        gflops = f"{row['gflops']:.2f}" if row.get("gflops") else "-"
        table.append(
            (
                row["target"],
                f"{row['median_ms']:.4f}",
                f"{row['p90_ms']:.4f}",
                f"{row['cv'] * 100:.1f}%",
                f"{row['throughput']:.1f}",
                f"{row['speedup']:.2f}x" if row["speedup"] else "-",
                gflops,
                ", ".join(notes),
            )
        )
    return table


def plot(rows: Sequence[dict[str, Any]], title: str, path: Path) -> Path:
    """Bar chart of median latency per target, whiskers to p90."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r["ok"]]
    if not measured:
        raise ConfigError(f"--plot {path}: no target measured anything to plot")
    names = [r["target"] for r in measured]
    medians = [r["median_ms"] for r in measured]
    upper = [max(0.0, r["p90_ms"] - r["median_ms"]) for r in measured]
    fig, ax = plt.subplots(figsize=(max(5.0, 1.4 * len(names)), 4.0))
    bars = ax.bar(names, medians, yerr=[[0.0] * len(upper), upper], capsize=4, color="#4C72B0")
    for bar, value in zip(bars, medians, strict=True):
        ax.annotate(
            f"{value:.3g}",
            (bar.get_x() + bar.get_width() / 2, value),
            ha="center",
            va="bottom",
            fontsize=8,
            xytext=(0, 2),
            textcoords="offset points",
        )
    ax.set_ylabel("latency, ms (median; whisker to p90)")
    ax.set_title(title, fontsize=10)
    ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _protocol(
    threads: int | None,
    repeats: int,
    min_repeat_ms: float,
    warmup: int,
    timeout: float,
    rtol: float | None = None,
    atol: float | None = None,
) -> MeasurementProtocol:
    from hwnas.measurement.protocol import MeasurementProtocol

    return MeasurementProtocol(
        warmup=warmup,
        repeats=repeats,
        min_repeat_ms=min_repeat_ms,
        threads=threads,
        timeout_s=timeout,
        rtol=rtol,
        atol=atol,
    )


@click.command()
@click.argument("supernet", required=False)
@click.argument(
    "subnet_file", metavar="[SUBNET.json]", required=False, type=click.Path(path_type=Path)
)
@click.option(
    "--targets",
    "-t",
    "target_list",
    required=True,
    help="Comma-separated target specs or presets, e.g. onnxruntime:cpu,tvm:llvm,torch:cpu.",
)
@click.option(
    "--onnx",
    "onnx_path",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Benchmark this ONNX model instead of a subnet.",
)
@click.option(
    "--torch",
    "torch_factory",
    metavar="MODULE:FACTORY",
    help="Benchmark the nn.Module a factory returns (or its (module, inputs) pair).",
)
@click.option(
    "--shape", help="Input shape for --torch factories that return only a module, e.g. 1x3x224x224."
)
@supernet_options
@click.option("--threads", type=int, help="Threads for every target that does not pin its own.")
@click.option(
    "--repeats", type=int, default=20, show_default=True, help="Timed samples per target."
)
@click.option(
    "--min-repeat-ms",
    type=float,
    default=20.0,
    show_default=True,
    help="Minimum length of one sample.",
)
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed runs first.")
@tolerance_options
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="Seconds before one measurement is killed.",
)
@click.option(
    "--cache",
    "cache_path",
    type=click.Path(path_type=Path),
    help="Measurement cache file or directory (default ~/.cache/hwnas).",
)
@click.option("--no-cache", is_flag=True, help="Measure again even if cached, and store nothing.")
@click.option(
    "--json", "json_out", type=click.Path(path_type=Path), help="Write the results as JSON here."
)
@click.option(
    "--plot", "plot_out", type=click.Path(path_type=Path), help="Write a PNG bar chart here."
)
def bench(
    supernet: str | None,
    subnet_file: Path | None,
    target_list: str,
    onnx_path: Path | None,
    torch_factory: str | None,
    shape: str | None,
    preset: str | None,
    settings: tuple[str, ...],
    checkpoint: Path | None,
    threads: int | None,
    repeats: int,
    min_repeat_ms: float,
    warmup: int,
    rtol: float | None,
    atol: float | None,
    timeout: float,
    cache_path: Path | None,
    no_cache: bool,
    json_out: Path | None,
    plot_out: Path | None,
) -> None:
    """Measure one model on several targets: SUPERNET SUBNET.json, --onnx MODEL.onnx, or --torch MODULE:FACTORY.

    Outputs are checked against the reference (torch; onnxruntime unoptimised
    for ONNX files) before anything is timed. Exits 1 if a target failed.
    """
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from hwnas.measurement.measurer import Measurer

    sources = [bool(supernet), bool(onnx_path), bool(torch_factory)]
    if sum(sources) != 1:
        raise ConfigError(
            "give exactly one model: SUPERNET SUBNET.json, --onnx MODEL.onnx or --torch MODULE:FACTORY"
        )
    if supernet and subnet_file is None:
        raise ConfigError(
            f"supernet {supernet!r} needs a SUBNET.json",
            hint="write one with `hwnas subnet sample`",
        )
    specs = [s.strip() for s in target_list.split(",") if s.strip()]
    if not specs:
        raise ConfigError("--targets is empty", hint="e.g. --targets onnxruntime:cpu,tvm:llvm")
    targets = resolve_available_targets(specs)
    protocol = _protocol(threads, repeats, min_repeat_ms, warmup, timeout, rtol, atol)
    cache: Any = None if no_cache else (cache_path or True)

    from hwnas.ir import GraphIR

    if onnx_path is not None:
        ir = GraphIR.from_onnx(onnx_path)
    elif torch_factory is not None:
        ir = model_from_factory(torch_factory, parse_shape(shape) if shape else None)
    else:
        assert supernet is not None and subnet_file is not None
        ir = model_from_subnet(supernet, subnet_file, preset, settings, checkpoint)

    results: list[MeasureResult] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        transient=True,
    ) as progress:
        task = progress.add_task("measuring", total=len(targets))
        for target in targets:
            progress.update(task, description=f"compiling, checking and timing on {target.label}")
            results.append(Measurer(target, protocol, cache=cache).measure_one(ir))
            progress.advance(task)

    rows = result_rows(targets, results)
    title = f"hwnas bench: {ir.name} ({', '.join(str(s) for s in ir.input_specs)}; {ir.macs / 1e6:.1f} M MACs)"
    print_table(
        title,
        ["target", "median ms", "p90 ms", "CV", "items/s", "speed-up", "GFLOP/s", "notes"],
        _table(rows),
    )
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "model": {
                "name": ir.name,
                "key": ir.key,
                "source": ir.source,
                "macs": ir.macs,
                "params": ir.params,
                "inputs": [s.to_dict() for s in ir.input_specs],
            },
            "protocol": protocol.to_dict(),
            "results": rows,
        }
        json_out.write_text(json.dumps(document, indent=2, default=str))
        click.echo(f"wrote {json_out}")
    if plot_out is not None and any(r["ok"] for r in rows):
        click.echo(f"wrote {plot(rows, title, plot_out)}")
    if not all(r["ok"] for r in rows):
        raise click.exceptions.Exit(1)
