"""``hwnas.search``: the public search entry point, its :class:`SearchResult`, and the run directory's report files.

It assembles strategy, evaluator, executor and run store and hands them to
:class:`~hwnas.search_core.loop.SearchLoop`; the loop's rules live there.
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from hwnas.model.search_space import SearchSpace, Subnet
from hwnas.search_core import run_record
from hwnas.search_core.evaluator import (
    Evaluation,
    Evaluator,
    FunctionProvider,
    Metrics,
    ObjectiveProvider,
)
from hwnas.search_core.executor import Executor
from hwnas.search_core.executor_spec import make_executor
from hwnas.search_core.free_statistics import FreeStatistics
from hwnas.search_core.loop import ProgressCallback, SearchLoop
from hwnas.search_core.objectives import (
    Constraint,
    Objective,
    parse_constraints,
    parse_objectives,
)
from hwnas.search_core.run_store import FILENAME, RunStore
from hwnas.search_core.search_result import SearchResult, build_result
from hwnas.search_core.strategy import Strategy, StrategySettings

EvaluateArg = (
    Callable[[Subnet], Mapping[str, float] | Metrics]
    | ObjectiveProvider
    | Sequence[ObjectiveProvider]
)


def search(
    space: SearchSpace,
    evaluate: EvaluateArg,
    objectives: str | Iterable[str | Objective] = ("accuracy", "latency"),
    *,
    strategy: str | type[Strategy] = "nsga2",
    budget: int = 100,
    constraints: Iterable[str | Constraint] = (),
    out: str | Path | None = None,
    resume: bool = False,
    retry_failed: bool = False,
    seed: int = 0,
    batch_size: int | None = None,
    executor: str | Executor | None = None,
    settings: StrategySettings | Mapping[str, str] | None = None,
    candidates: Sequence[Subnet] | None = None,
    statistics: FreeStatistics | None = None,
    progress: ProgressCallback | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> SearchResult:
    """Search ``space`` for subnets that optimise ``objectives``, spending at most ``budget`` real evaluations.

    ``evaluate`` is ``evaluate(subnet) -> {metric: value}`` (or
    :class:`~hwnas.search_core.evaluator.Metrics`), or one or more objective providers.
    ``constraints`` like ``"latency<=5ms"`` steer the search while it runs.
    With ``out`` every evaluation goes to ``out/search.sqlite`` as it finishes
    and the report files are written at the end; ``resume=True`` continues a
    stopped run there without repeating any evaluation (``budget`` is the
    total, and may be raised); a stored failure is not evaluated again unless
    ``retry_failed`` (with ``resume``), which evaluates every stored failure
    first and replaces it with the new result. ``candidates`` restricts the search to a finite
    set of subnets (e.g. a tabular benchmark). ``statistics`` are numbers known
    about any subnet before it is measured (IR counts, LUT sums, zero-cost
    proxies); strategies that can use them (linas) do. ``executor``: ``"inprocess"``
    (default), ``"process:N"``, or an :class:`~hwnas.search_core.executor.Executor`.
    ``metadata`` (plain data, e.g. which model was searched) is stored with the
    run, and a resumed run must have the same.
    """
    from hwnas.registry import strategy_class

    objectives = parse_objectives(objectives)
    constraints = parse_constraints(constraints, objectives)
    if budget < 1:
        raise ConfigError(f"budget must be at least 1 evaluation, got {budget}")
    if retry_failed and not resume:
        raise ConfigError(
            "retrying failed evaluations needs a run to resume",
            hint="pass --resume with --retry-failed (resume=True, retry_failed=True)",
        )
    strategy_cls = strategy_class(strategy) if isinstance(strategy, str) else strategy
    if isinstance(settings, Mapping):
        settings = strategy_cls.settings_class.from_strings(settings)
    evaluator = Evaluator(_providers(evaluate), objectives, constraints)
    own_executor = not isinstance(executor, Executor)
    runner = make_executor(executor)
    if batch_size is None:
        batch_size = max(10, runner.workers)
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")

    existed = out is not None and (Path(out) / FILENAME).is_file()
    store = RunStore.in_directory(out, lock=True)
    try:
        meta = _run_meta(
            space,
            objectives,
            constraints,
            strategy_cls,
            settings,
            seed,
            evaluator.fingerprint,
            candidates,
        ) | dict(metadata or {})
        if statistics is not None:
            meta["statistics"] = statistics.fingerprint() or type(statistics).__name__
        measured = _open_run(store, meta, space, resume, existed)
        # where this session's candidates ran; not checked on resume (a run may resume elsewhere)
        store.set_meta({"execution": runner.describe()})
        search_strategy = strategy_cls(
            space,
            objectives,
            constraints,
            seed,
            settings,
            candidates=candidates,
            statistics=statistics,
        )
        if retry_failed:
            measured = _retry_failed(measured, evaluator, runner, store)
        saved = store.load_state() if resume else None
        store.set_meta(run_record.started(budget))
        loop = SearchLoop(
            search_strategy,
            evaluator,
            store,
            runner,
            budget=budget,
            batch_size=batch_size,
            progress=progress,
        )
        if saved is not None:
            state, loop.tells = saved
            search_strategy.load_state_dict(state, {e.key: e for e in measured})
        try:
            loop.run(measured)
        except BaseException as exc:
            # what was measured is in the store; the report files say so too before the error goes up
            if out is not None:
                stopped = f"stopped by {type(exc).__name__}: {exc}".splitlines()[0]
                partial = build_result(
                    measured, objectives, constraints, strategy_cls.name, out, stopped
                )
                with contextlib.suppress(Exception):
                    write_reports(partial, Path(out))
            raise
        result = build_result(
            measured, objectives, constraints, strategy_cls.name, out, loop.stopped_reason
        )
        store.set_meta(run_record.finished(result.stopped_reason, len(result.evaluations)))
        if out is not None:
            try:
                write_reports(result, Path(out))
            except OSError as exc:
                raise ConfigError(
                    f"the search finished but its report files cannot be written in {out}: "
                    f"{exc.filename or ''} ({exc.strerror or exc})",
                    hint=f"every evaluation is in {Path(out) / FILENAME}; fix the folder and "
                    "run the same command with --resume to write them",
                ) from None
        return result
    finally:
        store.close()
        if own_executor:
            runner.close()


def _retry_failed(
    measured: list[Evaluation], evaluator: Evaluator, runner: Executor, store: RunStore
) -> list[Evaluation]:
    """``measured`` with every failed evaluation evaluated again, stored over the old one."""
    failed = [e.subnet for e in measured if e.error]
    if not failed:
        return measured
    again = {e.key: e for e in evaluator.evaluate(failed, runner)}
    for evaluation in again.values():
        store.replace(evaluation)
    store.checkpoint()
    return [again.get(e.key, e) for e in measured]


def _providers(evaluate: EvaluateArg) -> list[ObjectiveProvider]:
    if isinstance(evaluate, ObjectiveProvider):
        return [evaluate]
    if isinstance(evaluate, Sequence) and not isinstance(evaluate, str):
        if not all(isinstance(p, ObjectiveProvider) for p in evaluate):
            raise ConfigError("evaluate: a sequence must hold only ObjectiveProvider objects")
        return list(evaluate)
    return [FunctionProvider(evaluate)]  # type: ignore[arg-type]


def _run_meta(
    space: SearchSpace,
    objectives: Sequence[Objective],
    constraints: Sequence[Constraint],
    strategy_cls: type[Strategy],
    settings: StrategySettings | None,
    seed: int,
    fingerprint: str,
    candidates: Sequence[Subnet] | None,
) -> dict[str, Any]:
    return {
        "space": f"{space.name}@{space.signature}",
        "objectives": [f"{o.name}:{o.direction}" for o in objectives],
        "constraints": [f"{c.metric}{c.op}{c.bound!r}" for c in constraints],
        "strategy": strategy_cls.name,
        "settings": (settings or strategy_cls.settings_class()).as_dict(),
        "seed": seed,
        "fingerprint": fingerprint,
        "candidates": None if candidates is None else len({c.key for c in candidates}),
    }


def _open_run(
    store: RunStore, meta: dict[str, Any], space: SearchSpace, resume: bool, existed: bool
) -> list[Evaluation]:
    """Check the store against this search and return what it already holds.

    Resuming needs a store that is a run of this same search; a missing or
    never-started store is refused rather than silently started over.
    """
    existing = store.count()
    stored_meta = store.meta()
    if existing and not resume:
        raise ConfigError(
            f"{store.path} already holds {existing} evaluation(s) of an earlier search",
            hint="pass --resume (resume=True) to continue it, or choose another --out",
        )
    if resume and store.path is not None and (not existed or not stored_meta):
        listed = _rows_in(store.path.parent / "evaluations.csv")
        found = f"; evaluations.csv lists {listed} evaluation(s)" if listed else ""
        raise ConfigError(
            f"nothing to resume in {store.path.parent}: no search was stored there{found}",
            hint="drop --resume to start a new search, or point --out at the run to continue "
            "(a copied run needs search.sqlite, and search.sqlite-wal if there is one)",
        )
    if stored_meta:
        store.check_meta(meta)
    store.set_meta(meta | {"updated_at": time.time()})
    return store.evaluations(space)


def _rows_in(csv_path: Path) -> int:
    try:
        with csv_path.open(newline="") as f:
            return max(0, sum(1 for _ in csv.reader(f)) - 1)
    except OSError:
        return 0


# -- report files ------------------------------------------------------------------


def write_reports(result: SearchResult, out: Path) -> None:
    """``evaluations.csv``, ``pareto.csv``, ``pareto.json``, ``pareto.png``, ``hypervolume.csv`` and ``report.html`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    objectives = [o.name for o in result.objectives]  # objectives first, then the other metrics
    metrics = list(dict.fromkeys([*objectives, *(m for e in result.evaluations for m in e.values)]))
    genes = list(dict.fromkeys(g for e in result.evaluations for g in e.subnet.to_dict()))
    _write_csv(out / "evaluations.csv", result.evaluations, genes, metrics, with_status=True)
    _write_csv(out / "pareto.csv", result.pareto, genes, metrics, with_status=False)
    (out / "pareto.json").write_text(
        json.dumps(
            {
                "objectives": [
                    {"name": o.name, "direction": o.direction, "unit": o.unit}
                    for o in result.objectives
                ],
                "constraints": [str(c) for c in result.constraints],
                "strategy": result.strategy,
                "evaluations": len(result.evaluations),
                "hypervolume": result.hypervolume[-1] if result.hypervolume else 0.0,
                "pareto": [
                    {
                        "key": e.key,
                        "space": e.subnet.space,
                        "config": e.subnet.to_dict(),
                        "values": dict(e.values),
                    }
                    for e in result.pareto
                ],
            },
            indent=2,
        )
    )
    with (out / "hypervolume.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["evaluations", "hypervolume"])
        writer.writerows((i + 1, f"{v:.6f}") for i, v in enumerate(result.hypervolume))
    plot_front(result, out / "pareto.png")
    from hwnas.search_core.report_page import REPORT_FILE, write_report

    write_report([out], out / REPORT_FILE)


def _write_csv(
    path: Path,
    evaluations: Sequence[Evaluation],
    genes: list[str],
    metrics: list[str],
    *,
    with_status: bool,
) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        status = ["feasible", "violation", "seconds", "fingerprint", "error"] if with_status else []
        writer.writerow(["index", "key", *genes, *metrics, *status])
        for i, e in enumerate(evaluations):
            config = e.subnet.to_dict()
            row = [
                i,
                e.key,
                *(config.get(g, "") for g in genes),
                *(e.values.get(m, "") for m in metrics),
            ]
            if with_status:
                row += [
                    int(e.feasible),
                    e.violation,
                    f"{e.seconds:.4f}",
                    e.fingerprint,
                    e.error or "",
                ]
            writer.writerow(row)


def plot_front(result: SearchResult, path: Path) -> None:
    """Scatter of the first two objectives: all feasible evaluations, infeasible ones, and the front."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x_obj, y_obj = (result.objectives + result.objectives)[:2]
    figure = Figure(figsize=(6, 4.5), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    ok = [e for e in result.evaluations if e.ok]
    for group, style in (
        (
            [e for e in ok if not e.feasible],
            {"marker": "x", "color": "tab:red", "alpha": 0.4, "label": "violates a constraint"},
        ),
        (
            [e for e in ok if e.feasible],
            {"marker": "o", "color": "0.6", "alpha": 0.5, "s": 12, "label": "measured"},
        ),
    ):
        if group:
            axes.scatter(
                [e.values[x_obj.name] for e in group],
                [e.values[y_obj.name] for e in group],
                **style,
            )
    if result.pareto:
        front = sorted(result.pareto, key=lambda e: e.values[x_obj.name])
        axes.plot(
            [e.values[x_obj.name] for e in front],
            [e.values[y_obj.name] for e in front],
            "o-",
            color="tab:blue",
            label="Pareto front",
        )
    axes.set_xlabel(f"{x_obj.name} ({x_obj.direction}{', ' + x_obj.unit if x_obj.unit else ''})")
    axes.set_ylabel(f"{y_obj.name} ({y_obj.direction}{', ' + y_obj.unit if y_obj.unit else ''})")
    axes.set_title(
        f"{result.strategy}: {len(result.evaluations)} evaluations, {len(result.pareto)} on the front"
    )
    axes.grid(alpha=0.3)
    if axes.get_legend_handles_labels()[0]:  # nothing feasible yet: no legend to draw
        axes.legend(loc="best", fontsize=8)
    figure.tight_layout()
    figure.savefig(path)
