"""``hwnas search``: run a resumable multi-objective search and write its run directory.

It searches a supernet (the embedded default, ``--supernet`` or ``--checkpoint``)
measured on a target, or the NAS-Bench-201 tables (``--space nb201``: the cells
with a known accuracy; ``nb201-full``: all 15,625, a surrogate accuracy for the rest).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hwnas.cli.options import tolerance_options
from hwnas.cli.output import print_json, print_table

if TYPE_CHECKING:
    from hwnas.measurement.protocol import MeasurementProtocol


@click.command()
@click.option(
    "--space",
    "space_name",
    type=click.Choice(["nb201", "nb201-full"]),
    help="Search the NAS-Bench-201 tables instead of a supernet (nb201-full: every cell, "
    "a surrogate accuracy where the table has none).",
)
@click.option(
    "--latency-table",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --space: latency CSV (arch_string, <device>_latency_ms columns).",
)
@click.option(
    "--accuracy-table",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --space: accuracy CSV (arch_string and a column ending in 'accuracy').",
)
@click.option(
    "--supernet", help="Supernet to search (a registered name; default: the embedded trained one)."
)
@click.option(
    "--preset", help="Supernet preset, with --supernet (weights untrained unless --checkpoint)."
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trained supernet checkpoint (from `hwnas train`).",
)
@click.option(
    "--data", help="Data for the accuracy objective (default: what the checkpoint was trained on)."
)
@click.option(
    "--repeats",
    type=int,
    default=10,
    show_default=True,
    help="Timed repeats per latency measurement.",
)
@click.option(
    "--target",
    "-t",
    help="Where latency is measured; for --space nb201: a device of the table (raspi4, pixel3).",
)
@click.option(
    "--objectives",
    default="accuracy,latency",
    show_default=True,
    help="Comma-separated objectives; latency@DEVICE (or latency:DEVICE) names a table's "
    "device, e.g. accuracy,latency@raspi4,latency@pixel3.",
)
@click.option(
    "--strategy",
    default="nsga2",
    show_default=True,
    help="Search strategy (random, nsga2, evolution, linas, ...).",
)
@click.option(
    "--budget",
    type=int,
    default=100,
    show_default=True,
    help="Total real evaluations (also across --resume).",
)
@click.option(
    "--constraint",
    "constraints",
    multiple=True,
    metavar="EXPR",
    help="e.g. 'latency<=5ms', 'accuracy>=0.9'; repeatable.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Run directory, e.g. runs/NAME.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the search stored in --out without repeating evaluations.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="With --resume: evaluate the stored failed candidates again first (e.g. after fixing a target).",
)
@click.option(
    "--statistics",
    "statistics_spec",
    default="",
    metavar="LIST",
    help="Supernet searches: free statistics for strategies that use them (linas), any of "
    "ir (MACs, params, memory from each subnet's IR), lut (the per-kernel table of --target, "
    "see `hwnas lut build`), proxies (zero-cost accuracy proxies). NAS-Bench-201 always has them.",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--batch-size",
    type=int,
    help="Subnets proposed per ask (default: 10, or the worker count if larger).",
)
@click.option(
    "--workers",
    type=int,
    default=1,
    show_default=True,
    help="Evaluate in this many worker processes.",
)
@click.option(
    "--executor",
    metavar="SPEC",
    help="Where candidates are evaluated: 'process' (the --workers pinned to their own cores), "
    "'ray' (a local Ray cluster) or 'ray://HOST:PORT' (an existing one); default: in this process, "
    "or 'process' when --workers > 1.",
)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="NAME=VALUE",
    help="A strategy setting, e.g. --set population_size=20.",
)
@click.option(
    "--precision",
    "precisions",
    default="fp32",
    show_default=True,
    help="Precisions to search as a gene, e.g. fp32,int8 (int8: static QDQ quantisation, "
    "scored and timed as quantised; infeasible on targets without int8).",
)
@click.option(
    "--calibration",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="int8 calibration examples (.npy, or .npz with x); default: the data's calibration split.",
)
@tolerance_options
@click.option("--json", "as_json", is_flag=True, help="Print the Pareto front as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def search(
    space_name: str | None,
    latency_table: Path | None,
    accuracy_table: Path | None,
    supernet: str | None,
    preset: str | None,
    checkpoint: Path | None,
    data: str | None,
    repeats: int,
    target: str | None,
    objectives: str,
    strategy: str,
    budget: int,
    constraints: tuple[str, ...],
    out: Path,
    resume: bool,
    retry_failed: bool,
    statistics_spec: str,
    seed: int,
    batch_size: int | None,
    workers: int,
    executor: str | None,
    settings: tuple[str, ...],
    precisions: str,
    calibration: Path | None,
    rtol: float | None,
    atol: float | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Search for Pareto-optimal subnets, measuring each candidate once and storing it at once.

    Example: hwnas search --space nb201 --target raspi4 --strategy linas
    --budget 200 --constraint 'latency<=20ms' --out runs/nb201-linas

    Three objectives: hwnas search --space nb201-full --strategy linas
    --objectives accuracy,latency@raspi4,latency@pixel3 --out runs/nb201-3obj
    """
    from hwnas.cli.options import parse_pairs
    from hwnas.errors import ConfigError, StrategyError
    from hwnas.measurement.protocol import MeasurementProtocol
    from hwnas.search_core.api import search as run_search
    from hwnas.search_core.objectives import parse_objectives
    from hwnas.search_core.precision import load_calibration, parse_precisions

    parsed = parse_objectives(objectives)
    searched = parse_precisions(precisions)
    if space_name:
        if supernet or checkpoint:
            raise ConfigError("give either --space or --supernet/--checkpoint, not both")
        if searched != ("fp32",) or calibration is not None:
            raise ConfigError("--precision/--calibration apply to supernet searches, not --space")
        if statistics_spec:
            raise ConfigError("--statistics is for supernet searches; NAS-Bench-201 has its own")
        problem = _table_problem(space_name, target, parsed, latency_table, accuracy_table)
    else:
        if calibration is not None and "int8" not in searched:
            raise ConfigError("--calibration is for int8: add --precision fp32,int8")
        if latency_table or accuracy_table:
            raise ConfigError("--latency-table and --accuracy-table go with --space")
        protocol = MeasurementProtocol(repeats=repeats, rtol=rtol, atol=atol)
        problem = _supernet_problem(
            supernet,
            preset,
            checkpoint,
            data,
            target,
            protocol,
            parsed,
            constraints,
            searched,
            load_calibration(calibration) if calibration is not None else None,
        )
        problem["statistics"] = _supernet_statistics(statistics_spec, problem, target)
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    pairs = parse_pairs(settings, example="population_size=20")
    with _ProgressBar(budget, problem["objectives"], enabled=not quiet) as bar:
        try:
            result = run_search(
                problem["space"],
                problem["evaluate"],
                problem["objectives"],
                strategy=strategy,
                budget=budget,
                constraints=constraints,
                out=out,
                resume=resume,
                retry_failed=retry_failed,
                seed=seed,
                batch_size=batch_size,
                executor=_executor_spec(executor, workers),
                settings=pairs,
                candidates=problem["candidates"],
                statistics=problem.get("statistics"),
                progress=bar.update,
                metadata=problem.get("metadata"),
            )
        except StrategyError as exc:
            bar.stop()
            raise StrategyError(
                exc.plugin,
                exc.message.removeprefix(f"plugin {exc.plugin!r}: ")
                + f"; {_stored(out)} evaluation(s) are saved in {out}",
                hint=f"continue with: {resume_command()}",
            ) from exc
        except KeyboardInterrupt:
            bar.stop()
            click.echo(
                f"interrupted: {_stored(out)} evaluation(s) are saved in {out}; continue with --resume",
                err=True,
            )
            raise SystemExit(130) from None
    _report(result, as_json)


def _supernet_problem(
    supernet: str | None,
    preset: str | None,
    checkpoint: Path | None,
    data: str | None,
    target: str | None,
    protocol: MeasurementProtocol,
    objectives: tuple[Any, ...],
    constraints: tuple[str, ...],
    precisions: tuple[str, ...] = ("fp32",),
    calibration: Any = None,
) -> dict[str, Any]:
    from hwnas.cli.options import load_model
    from hwnas.search_core.objectives import parse_constraints
    from hwnas.search_core.precision import precision_space
    from hwnas.search_core.subnet_objectives import supernet_providers

    metrics = [o.name for o in objectives] + [
        c.metric for c in parse_constraints(constraints, objectives)
    ]
    loaded = load_model(supernet, preset, (), checkpoint)
    providers, target_info = supernet_providers(
        loaded, metrics, target, protocol, data, precisions, calibration
    )
    emulated = target_info.get("fingerprint", {}).get("emulated")
    note = " (EMULATED boards: latencies prove the path, not the board's speed)" if emulated else ""
    click.echo(
        f"searching {loaded.source} on {target_info.get('label', 'no target')}{note}", err=True
    )
    for precision, reason in target_info.get("infeasible", {}).items():
        click.echo(f"note: {precision} subnets will be marked infeasible: {reason}", err=True)
    metadata: dict[str, Any] = {"model": loaded.describe(), "target": target_info}
    if precisions != ("fp32",):
        metadata["precisions"] = list(precisions)
    return {
        "space": precision_space(loaded.supernet.space, precisions),
        "evaluate": providers,
        "objectives": objectives,
        "candidates": None,
        "metadata": metadata,
        "loaded": loaded,
        "data": data,
    }


STATISTICS = ("ir", "lut", "proxies")
# the proxies a search computes (tools/bench_zero_cost.py measures each against accuracy)
SEARCH_PROXIES = ("jacob_cov", "synflow", "grad_norm")


def _supernet_statistics(spec: str, problem: dict[str, Any], target: str | None) -> Any:
    """The free statistics ``--statistics`` asks for, sharing the providers' IR cache."""
    from hwnas.errors import ConfigError

    wanted = [w.strip() for w in spec.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in STATISTICS]
    if unknown:
        raise ConfigError(
            f"--statistics: unknown {', '.join(map(repr, unknown))}",
            hint=f"choose from {', '.join(STATISTICS)}",
        )
    if not wanted:
        return None
    from hwnas.search_core.subnet_objectives import SubnetModels
    from hwnas.search_core.supernet_statistics import SupernetStatistics

    loaded = problem["loaded"]
    models = next(
        (p.models for p in problem["evaluate"] if hasattr(p, "models")),
        None,
    ) or SubnetModels(loaded.supernet, loaded.module)
    table = None
    if "lut" in wanted:
        from hwnas.measurement.kernel_table import KernelTable, table_path
        from hwnas.measurement.resolve import resolve_target

        if not target:
            raise ConfigError("--statistics lut needs --target (the table is per target)")
        resolved = resolve_target(target)
        table = KernelTable.for_target(resolved)
        if not table.kernels:
            raise ConfigError(
                f"no kernel table for {resolved.label} at {table_path(resolved)}",
                hint=f"build it first: hwnas lut build --target '{target}'",
            )
    batch = None
    if "proxies" in wanted:
        batch = next(iter(loaded.data(problem["data"]).calibration.batches(64)))
    return SupernetStatistics(
        models,
        kernel_table=table,
        proxies=SEARCH_PROXIES if "proxies" in wanted else (),
        batch=batch,
    )


def _table_problem(
    space_name: str,
    target: str | None,
    objectives: tuple[Any, ...],
    latency_table: Path | None,
    accuracy_table: Path | None,
) -> dict[str, Any]:
    from hwnas.errors import ConfigError
    from hwnas.search_core import nb201
    from hwnas.search_core.nb201_statistics import NB201Statistics

    if (latency_table is None) != (accuracy_table is None):
        raise ConfigError("give both --latency-table and --accuracy-table, or neither")
    tables = (
        nb201.NB201Tables.from_csv(latency_table, accuracy_table)
        if latency_table is not None and accuracy_table is not None
        else nb201.NB201Tables.load()
    )
    if space_name == "nb201-full":
        tables = tables.complete()
    names = [o.name for o in objectives]
    for name in names:
        nb201.objective_for(name)
    latency = nb201.latency_metrics(names, target)
    space = nb201.search_space()
    candidates = tables.candidates(space)
    # Declared bounds make the hypervolume comparable between runs on these tables.
    bounded = tables.objectives(names, candidates, target)
    return {
        "space": space,
        "evaluate": nb201.NB201Provider(tables, latency),
        "objectives": bounded,
        "candidates": None if space_name == "nb201-full" else candidates,
        "statistics": NB201Statistics(tables, luts=latency),
        "metadata": {"benchmark": space_name},
    }


def _executor_spec(executor: str | None, workers: int) -> str:
    """``--executor`` and ``--workers`` as one executor spec (see hwnas.search_core.executor)."""
    from hwnas.errors import ConfigError

    if executor is None:
        return "inprocess" if workers == 1 else f"process:{workers}"
    executor = executor.strip()
    if executor in ("process", "ray"):
        return f"{executor}:{workers}" if workers > 1 or executor == "process" else executor
    if executor.startswith("ray://"):
        return executor if workers == 1 or "?" in executor else f"{executor}?workers={workers}"
    if executor == "inprocess":
        if workers > 1:
            raise ConfigError("--executor inprocess runs one candidate at a time; drop --workers")
        return executor
    raise ConfigError(
        f"unknown --executor {executor!r}", hint="use process, ray, or ray://HOST:PORT"
    )


def _stored(out: Path) -> int:
    from hwnas.search_core.run_store import RunStore

    try:
        with RunStore.open_existing(out) as store:
            return store.count()
    except Exception:  # nothing stored yet, or the store is being written
        return 0


def resume_command() -> str:
    """The command line that continues this search: the one given, with ``--resume``."""
    import shlex
    import sys

    args = [a for a in sys.argv[1:] if a != "--resume"]
    return shlex.join(["hwnas", *args, "--resume"])


class _ProgressBar:
    """A rich progress bar on stderr: evaluations, hypervolume, best value per objective, ETA."""

    def __init__(self, budget: int, objectives: tuple[Any, ...], *, enabled: bool) -> None:
        self.objectives = objectives
        self._progress: Any = None
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("[bold]search"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("HV {task.fields[hv]}"),
                TextColumn("{task.fields[best]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._task = self._progress.add_task("search", total=budget, hv="-", best="")

    def __enter__(self) -> _ProgressBar:
        # Started by the first update, so that an error before any evaluation shows no empty bar.
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, snapshot: Any) -> None:
        if self._progress is None:
            return
        if not self._progress.live.is_started:
            self._progress.start()
        best = " ".join(
            f"{o.name}={o.format(snapshot.best[o.name])}"
            for o in self.objectives
            if not math.isnan(snapshot.best[o.name])
        )
        failed = f" failed={snapshot.failed}" if snapshot.failed else ""
        self._progress.update(
            self._task,
            completed=snapshot.evaluations,
            hv=f"{snapshot.hypervolume:.4f}",
            best=best + failed,
        )


def _report(result: Any, as_json: bool) -> None:
    if as_json:
        print_json(
            [
                {"key": e.key, "config": e.subnet.to_dict(), "values": dict(e.values)}
                for e in result.pareto
            ]
        )
        return
    from hwnas.search_core.report_data import config_changes, format_changes, format_config
    from hwnas.search_core.report_page import REPORT_FILE

    names = [o.name for o in result.objectives]
    # Subnets of one supernet share most genes: row 1 shows all, the rest only what differs from it.
    reference = result.pareto[0].subnet.to_dict() if result.pareto else {}
    rows = [
        (
            e.key,
            *(o.format(e.values[o.name]) for o in result.objectives),
            format_config(reference)
            if i == 0
            else format_changes(config_changes(e.subnet.to_dict(), reference)),
        )
        for i, e in enumerate(result.pareto)
    ]
    print_table(
        f"Pareto front: {len(result.pareto)} of {len(result.evaluations)} measured",
        ["key", *names, "genes (row 1: all; below: what differs from row 1)"],
        rows,
    )
    if result.stopped_reason:
        click.echo(f"stopped early: {result.stopped_reason}")
    hv = result.hypervolume[-1] if result.hypervolume else 0.0
    click.echo(
        f"hypervolume {hv:.4f}; failed evaluations: {len(result.failed)}; results in {result.out}/"
    )
    click.echo(f"report: {result.out / REPORT_FILE} (open it in a browser)")
