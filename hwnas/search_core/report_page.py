"""The HTML report page: one self-contained file (CSS, JS and data inline) showing search runs and bench results.

Tables are written here, readable without JavaScript; the charts are drawn in the
browser by ``report_assets/report.js`` from the JSON embedded in the page.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError
from hwnas.search_core.objectives import BUILTIN_OBJECTIVES, Objective
from hwnas.search_core.report_data import (
    NOISY,
    REMEASURES,
    LatencySummary,
    RunView,
    constraint_text,
    describe_value,
    format_config,
    hypervolume_note,
    run_views,
)
from hwnas.search_core.report_inputs import BenchDocument, StoredRun, read_input

REPORT_FILE = "report.html"
#: Run colours, told apart also in grey print; status is shown by marker shape, not colour.
RUN_COLOURS = ("#1d4ed8", "#059669", "#7c3aed", "#d97706", "#0891b2", "#db2777", "#4b5563")
#: Metrics kept out of the chart's axis choices (flags and counts, not quantities).
_NOT_AXES = {REMEASURES, NOISY}


class Html(str):
    """Markup that is already safe; any other ``str`` put into the page is escaped."""


def _e(value: Any) -> str:
    return value if isinstance(value, Html) else html.escape(str(value))


@dataclass(frozen=True)
class WrittenReport:
    """What :func:`write_report` wrote: the file, and the runs and bench results it shows."""

    path: Path
    runs: tuple[RunView, ...]
    benches: tuple[BenchDocument, ...]

    @property
    def incomplete(self) -> list[RunView]:
        return [v for v in self.runs if not v.run.progress.complete]


def write_report(
    inputs: Iterable[str | Path], out: str | Path, *, title: str | None = None
) -> WrittenReport:
    """Read every run directory / bench JSON in ``inputs`` and write the report page to ``out``."""
    items = [read_input(p) for p in inputs]
    if not items:
        raise ConfigError(
            "nothing to report", hint="give one or more run directories or bench JSON files"
        )
    runs = tuple(run_views([i for i in items if isinstance(i, StoredRun)]))
    benches = tuple(i for i in items if isinstance(i, BenchDocument))
    out = Path(out)
    if out.is_dir():
        raise ConfigError(
            f"--out {out} is a directory", hint=f"name the file, e.g. {out / REPORT_FILE}"
        )
    page = render(runs, benches, title or _default_title(runs, benches))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.{os.getpid()}.tmp")
        partial.write_text(page, encoding="utf-8")
        partial.replace(out)  # a reader never sees half a page
    except OSError as exc:
        raise ConfigError(
            f"cannot write the report to {out} ({exc.strerror})", hint="choose another --out"
        ) from None
    return WrittenReport(out, runs, benches)


def _default_title(runs: Sequence[RunView], benches: Sequence[BenchDocument]) -> str:
    names = [v.label for v in runs] + [b.name for b in benches]
    return (
        "hwnas report: "
        + ", ".join(names[:4])
        + (f" and {len(names) - 4} more" if len(names) > 4 else "")
    )


def render(runs: Sequence[RunView], benches: Sequence[BenchDocument], title: str) -> str:
    """The whole page as one string."""
    from hwnas import __version__

    sections: list[tuple[str, str, str]] = []
    if runs:
        sections += [
            ("summary", "Runs", _summary(runs)),
            ("front", "Pareto front", _front(runs)),
            ("hypervolume", "Hypervolume", _hypervolume(runs)),
            ("evaluations", "Every evaluation", _evaluations(runs)),
            ("latency", "Latency samples", _latency(runs)),
            ("failures", "Failures", _failures(runs)),
        ]
    if benches:
        sections.append(("bench", "Benchmarks", _benches(benches)))
    if runs:
        sections.append(("metadata", "Run metadata", _metadata(runs)))
    data = {
        "runs": [_run_data(v, _run_id(i), _colour(i)) for i, v in enumerate(runs)],
        "benches": [_bench_data(b, f"b{i}") for i, b in enumerate(benches)],
    }
    now = dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    sources = ", ".join(str(v.run.path) for v in runs) or ""
    sources += (", " if sources and benches else "") + ", ".join(str(b.path) for b in benches)
    nav = "".join(f'<a href="#{sid}">{_e(name)}</a>' for sid, name, _ in sections)
    body = "".join(
        f'<section id="{sid}"><h2>{_e(name)}</h2>{content}</section>'
        for sid, name, content in sections
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # The page loads nothing: this policy makes a stray URL an error, not a request.
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">"
        f"<title>{_e(title)}</title><style>{_asset('report.css')}</style></head><body>"
        f'<header><h1>{_e(title)}</h1><div class="sub">hwnas {_e(__version__)} · '
        f"generated {_e(now)} · from {_e(sources)}</div></header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        "<footer>Hover a point for its subnet; click a point or a row to see all its genes and "
        "latency samples. Without JavaScript the tables still hold every number.</footer>"
        f'<script type="application/json" id="report-data">{_json_for_script(data)}</script>'
        f"<script>{_asset('report.js')}</script></body></html>\n"
    )


def _asset(name: str) -> str:
    return (resources.files("hwnas.search_core") / "report_assets" / name).read_text(
        encoding="utf-8"
    )


def _json_for_script(data: Any) -> str:
    """JSON safe inside ``<script>``: no ``</script>`` can end it early, and NaN/inf become null."""
    text = json.dumps(_finite(data), allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# -- formatting ---------------------------------------------------------------------------


def _format(metric: str, value: float | None, objectives: Sequence[Objective] = ()) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    known = {o.name: o for o in objectives} | {
        k: v for k, v in BUILTIN_OBJECTIVES.items() if k not in {o.name for o in objectives}
    }
    if metric in known and known[metric].unit:
        return known[metric].format(value)
    return f"{value:.4g}"


def _ms(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.4g}"


def _time(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)) or stamp <= 0:
        return "-"
    return dt.datetime.fromtimestamp(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _table(
    columns: Sequence[str],
    rows: Iterable[tuple[Sequence[Any], Mapping[str, str]]],
    *,
    table_id: str = "",
    numeric: Iterable[int] = (),
    classes: Mapping[int, str] | None = None,
) -> str:
    """A table; cells are escaped unless :class:`Html`; ``numeric`` columns right-aligned."""
    numeric = set(numeric)
    classes = dict(classes or {})
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = []
    for cells, attrs in rows:
        attr = "".join(f' {k}="{_e(v)}"' for k, v in attrs.items())
        tds = "".join(
            f'<td class="{"num" if i in numeric else classes.get(i, "")}">{_e(c)}</td>'
            for i, c in enumerate(cells)
        )
        body.append(f"<tr{attr}>{tds}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _run_id(index: int) -> str:
    """The id of the index-th run in the page's elements and data (tables ``evaluations-r0``, points ``data-run``)."""
    return f"r{index}"


def _colour(index: int) -> str:
    return RUN_COLOURS[index % len(RUN_COLOURS)]


def _status(status: str) -> Html:
    return Html(f'<span class="status {status}">{status}</span>')


def _row_attrs(run_id: str, n: int, status: str) -> dict[str, str]:
    return {"data-run": run_id, "data-n": str(n), "data-status": status}


def _extra_metrics(view: RunView) -> list[str]:
    """Recorded metrics that are not objectives, the sizes first: shown as extra columns."""
    names = {o.name for o in view.objectives}
    seen = dict.fromkeys(m for e in view.evaluations if e.ok for m in e.values)
    order = [m for m in ("macs", "params", "peak_memory", "latency") if m in seen]
    order += [m for m in seen if m not in order]
    return [m for m in order if m not in names and m not in _NOT_AXES]


# -- sections -------------------------------------------------------------------------------


def _summary(runs: Sequence[RunView]) -> str:
    cards = []
    for i, view in enumerate(runs):
        run, result = view.run, view.result
        evaluations = result.evaluations
        failed = sum(not e.ok for e in evaluations)
        infeasible = sum(e.ok and not e.feasible for e in evaluations)
        best = ", ".join(
            f"{o.name} {_format(o.name, b.values[o.name], view.objectives)}"
            for o in view.objectives
            if (b := result.best(o.name)) is not None
        )
        spent = sum(e.seconds for e in evaluations)
        facts = [
            ("strategy", run.meta.get("strategy", "?")),
            ("target", view.target or "-"),
            ("objectives", ", ".join(f"{o.name} ({o.direction})" for o in view.objectives)),
            (
                "constraints",
                ", ".join(constraint_text(c, view.objectives) for c in view.constraints) or "none",
            ),
            (
                "evaluations",
                f"{len(evaluations)} ({len(evaluations) - failed - infeasible} feasible, "
                f"{infeasible} infeasible, {failed} failed)",
            ),
            ("Pareto front", f"{len(result.pareto)} subnets"),
            ("best", best or "-"),
            ("hypervolume", f"{result.hypervolume[-1]:.4f}" if result.hypervolume else "-"),
            ("evaluation time", _duration(spent)),
        ]
        banner_class = "complete" if run.progress.complete else "incomplete"
        dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
        cards.append(
            f'<div class="card" data-run-card="{_e(view.label)}"><h3><span class="swatch" '
            f'style="background:{_colour(i)}"></span>{_e(view.label)}</h3>'
            f'<div class="banner {banner_class}">{_e(run.progress.note)}</div><dl>{dl}</dl></div>'
        )
    return f'<div class="cards">{"".join(cards)}</div>'


def _front(runs: Sequence[RunView]) -> str:
    chart = (
        '<div class="chart-row"><div class="chart">'
        '<div class="controls"><label>x <select id="x-metric"></select></label>'
        '<label>y <select id="y-metric"></select></label></div>'
        '<svg id="front-chart" role="img" aria-label="every evaluation and the Pareto front"></svg>'
        '<div class="legend" id="front-legend"></div></div>'
        '<div id="detail"><p class="empty">Click a point or a row.</p></div></div>'
        '<p class="note">Every evaluation is plotted: filled dots are feasible (large, outlined: on the '
        "Pareto front of the search's objectives), hollow squares violate a constraint, crosses in the "
        "band below the axis failed (they have no metrics; placed by evaluation order). Dashed lines are "
        "constraint bounds. Choose any recorded metric for either axis.</p>"
    )
    tables = []
    for i, view in enumerate(runs):
        run_id = _run_id(i)
        extras = [m for m in _extra_metrics(view) if m in ("macs", "params", "peak_memory")]
        timed = any(s is not None for s in view.latency)
        columns = [
            "rank",
            "#",
            "key",
            *(o.name for o in view.objectives),
            *extras,
            *(["latency CV"] if timed else []),
            "genes (rank 1: all; others: what differs from rank 1)",
        ]
        rows = []
        for rank, e in enumerate(view.result.pareto, start=1):
            n = view.number(e)
            latency = view.latency[n - 1]
            cv = ["-" if latency is None else f"{latency.cv * 100:.1f}%"] if timed else []
            genes = format_config(e.subnet.to_dict()) if rank == 1 else view.changes(e)
            rows.append(
                (
                    [
                        rank,
                        n,
                        e.key,
                        *(
                            _format(o.name, e.values.get(o.name), view.objectives)
                            for o in view.objectives
                        ),
                        *(_format(m, e.values.get(m)) for m in extras),
                        *cv,
                        genes,
                    ],
                    _row_attrs(run_id, n, "front"),
                )
            )
        numeric = range(3, 3 + len(view.objectives) + len(extras) + int(timed))
        table = (
            _table(
                columns,
                rows,
                table_id=f"front-{run_id}",
                numeric=numeric,
                classes={2: "key", len(columns) - 1: "genes-cell"},
            )
            if rows
            else '<p class="empty">No feasible evaluation yet, so no front.</p>'
        )
        tables.append(f"<h3>{_e(view.label)}: {len(rows)} on the front</h3>{table}")
    return chart + "".join(tables)


def _hypervolume(runs: Sequence[RunView]) -> str:
    return (
        '<div class="chart"><svg id="hv-chart" role="img" aria-label="hypervolume over evaluations"></svg>'
        '<div class="legend" id="hv-legend"></div></div>'
        f'<p class="note">{_e(hypervolume_note(runs))}</p>'
    )


def _evaluations(runs: Sequence[RunView]) -> str:
    parts = []
    for i, view in enumerate(runs):
        run_id = _run_id(i)
        extras = _extra_metrics(view)
        columns = [
            "#",
            "status",
            "key",
            *(o.name for o in view.objectives),
            *extras,
            "seconds",
            "genes vs front rank 1",
            "error",
        ]
        rows = []
        for n, e in enumerate(view.evaluations, start=1):
            status = view.status(e)
            rows.append(
                (
                    [
                        n,
                        _status(status),
                        e.key,
                        *(
                            _format(o.name, e.values.get(o.name), view.objectives)
                            for o in view.objectives
                        ),
                        *(_format(m, e.values.get(m)) for m in extras),
                        f"{e.seconds:.2f}",
                        view.changes(e) or "(rank 1)",
                        e.error or "",
                    ],
                    _row_attrs(run_id, n, status),
                )
            )
        table_id = f"evaluations-{run_id}"
        counts = {
            s: sum(view.status(e) == s for e in view.evaluations)
            for s in ("front", "feasible", "infeasible", "failed")
        }
        counts["feasible"] += counts["front"]
        buttons = '<button class="active" data-status="all">all</button>' + "".join(
            f'<button data-status="{s}">{s} ({counts[s]})</button>' for s in counts
        )
        numeric = range(3, 3 + len(view.objectives) + len(extras) + 1)
        parts.append(
            f"<h3>{_e(view.label)}: {len(rows)} evaluations</h3>"
            f'<div class="filters" data-table="{table_id}">{buttons}</div>'
            + (
                '<div class="scroll">'
                + _table(
                    columns,
                    rows,
                    table_id=table_id,
                    numeric=numeric,
                    classes={2: "key", len(columns) - 2: "genes-cell", len(columns) - 1: "error"},
                )
                + "</div>"
                if rows
                else '<p class="empty">No evaluation stored yet.</p>'
            )
        )
    return "".join(parts)


def _latency(runs: Sequence[RunView]) -> str:
    parts = [
        '<p class="note">Each candidate\'s raw timing samples as stored (ms per inference). '
        "CV is their coefficient of variation; a candidate is noisy when CV stays above the "
        "protocol's threshold after its re-measures. Distribution: each sample's deviation from "
        "the candidate's median (tick), bar: interquartile range, line: min to max; one scale "
        "per run (hover for it), so wider means noisier.</p>"
    ]
    for i, view in enumerate(runs):
        run_id = _run_id(i)
        measured = [
            (n, e, s)
            for n, (e, s) in enumerate(zip(view.evaluations, view.latency, strict=True), start=1)
            if s is not None
        ]
        if not measured:
            parts.append(
                f'<h3>{_e(view.label)}</h3><p class="empty">This run stored no latency samples '
                "(latency was not measured, or came from a table).</p>"
            )
            continue
        # deviations from each candidate's median, on a scale shared by the run (at least +-2%)
        reach = max(0.02, *(_deviation(s, v) for _, _, s in measured for v in s.samples))
        noisy = sum(s.noisy for _, _, s in measured)
        rows = [
            (
                [
                    n,
                    _status(view.status(e)),
                    e.key,
                    len(s.samples),
                    _ms(s.median),
                    _ms(s.p90),
                    f"{s.cv * 100:.1f}%",
                    "?" if s.remeasures is None else s.remeasures,
                    Html('<span class="noisy">noisy</span>') if s.noisy else "",
                    _samples_svg(s, reach),
                ],
                _row_attrs(run_id, n, view.status(e)),
            )
            for n, e, s in measured
        ]
        derived = any(s.remeasures is None for _, _, s in measured)
        note = (
            (
                ' <span class="note">(re-measures not recorded by this run; noisy judged from the CV, '
                "threshold 5%)</span>"
            )
            if derived
            else ""
        )
        parts.append(
            f"<h3>{_e(view.label)}: {len(measured)} candidates timed, {noisy} noisy{note}</h3>"
            '<div class="scroll">'
            + _table(
                [
                    "#",
                    "status",
                    "key",
                    "samples",
                    "median",
                    "p90",
                    "CV",
                    "re-measures",
                    "noisy",
                    "distribution",
                ],
                rows,
                table_id=f"latency-{run_id}",
                numeric=range(3, 8),
                classes={2: "key"},
            )
            + "</div>"
        )
    return "".join(parts)


def _deviation(summary: LatencySummary, sample: float) -> float:
    """``|sample / median - 1|``, the relative spread the distribution column draws."""
    return abs(sample / summary.median - 1.0) if summary.median > 0 else 0.0


def _samples_svg(summary: LatencySummary, reach: float) -> Html:
    """A box plot with every sample as a dot, relative to the median, from -reach to +reach.

    One path per layer, not an element per sample: a run of thousands of
    candidates stays a page the browser opens quickly.
    """
    width, height, pad = 160.0, 18.0, 3.0
    s = summary
    median = s.median if s.median > 0 else 1.0

    def x(v: float) -> str:
        relative = max(-reach, min(reach, v / median - 1.0))
        return f"{pad + (relative + reach) / (2 * reach) * (width - 2 * pad):.1f}"

    # zero-length segments with round caps draw as dots
    dots = "".join(f"M{x(v)} {6 + (i % 3) * 3}h0" for i, v in enumerate(s.samples))
    return Html(
        f'<svg class="dist" width="{width:g}" height="{height:g}" viewBox="0 0 {width:g} {height:g}">'
        f"<title>{len(s.samples)} samples, median {s.median:.4g}, p90 {s.p90:.4g}, "
        f"CV {s.cv * 100:.1f}%; scale: median -{reach * 100:.0f}% to +{reach * 100:.0f}%</title>"
        f'<path d="M{x(min(s.samples))} 9H{x(max(s.samples))}" stroke="#9aa5b1"/>'
        f'<path d="M{x(s.q25)} 9H{x(s.q75)}" stroke="#4c72b0" stroke-opacity="0.35" '
        'stroke-width="10" stroke-linecap="square"/>'
        f'<path d="M{x(s.median)} 2V16" stroke="#1f2933" stroke-width="2"/>'
        f'<path d="{dots}" stroke="#e07b39" stroke-opacity="0.6" stroke-width="2.8" '
        'stroke-linecap="round"/></svg>'
    )


def _failures(runs: Sequence[RunView]) -> str:
    parts = []
    for i, view in enumerate(runs):
        run_id = _run_id(i)
        failed = [(n, e) for n, e in enumerate(view.evaluations, start=1) if not e.ok]
        if not failed:
            parts.append(f'<h3>{_e(view.label)}</h3><p class="empty">No evaluation failed.</p>')
            continue
        reasons: dict[str, int] = {}
        for _, e in failed:
            reasons[e.error or "?"] = reasons.get(e.error or "?", 0) + 1
        common = "; ".join(
            f"{count}× {reason}"
            for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1])[:3]
        )
        rows = [
            (
                [n, e.key, e.error or "", f"{e.seconds:.2f}", view.changes(e)],
                _row_attrs(run_id, n, "failed"),
            )
            for n, e in failed
        ]
        parts.append(
            f'<h3>{_e(view.label)}: {len(failed)} failed</h3><p class="note">Most common: {_e(common)}</p>'
            + _table(
                ["#", "key", "reason", "seconds", "genes vs front rank 1"],
                rows,
                table_id=f"failures-{run_id}",
                numeric=[3],
                classes={1: "key", 2: "error", 4: "genes-cell"},
            )
        )
    return "".join(parts)


def _benches(benches: Sequence[BenchDocument]) -> str:
    parts = []
    for i, bench in enumerate(benches):
        model = bench.model
        inputs = ", ".join(
            f"{s.get('name', '?')} {'x'.join(str(d) for d in s.get('shape', []))} {s.get('dtype', '')}".strip()
            for s in model.get("inputs", [])
            if isinstance(s, Mapping)
        )
        sizes = []
        if isinstance(model.get("macs"), (int, float)):
            sizes.append(f"{model['macs'] / 1e6:.2f} M MACs")
        if isinstance(model.get("params"), (int, float)):
            sizes.append(f"{model['params'] / 1e6:.3f} M params")
        protocol = bench.protocol
        proto = ", ".join(
            f"{k}={'auto' if protocol[k] is None else protocol[k]}"
            for k in ("repeats", "warmup", "min_repeat_ms", "threads", "cv_threshold")
            if k in protocol
        )
        rows = []
        for row in bench.results:
            if not row.get("ok"):
                rows.append(
                    (
                        [
                            row.get("target", "?"),
                            "-",
                            "-",
                            "-",
                            "-",
                            "-",
                            "-",
                            f"failed ({row.get('failure', '?')}): {row.get('reason', '')}",
                        ],
                        {"data-ok": "0"},
                    )
                )
                continue
            notes = [str(row.get("timer", ""))]
            notes += [flag for flag in ("cached", "noisy") if row.get(flag)]
            if isinstance(row.get("fingerprint"), Mapping) and row["fingerprint"].get("emulated"):
                notes.append("EMULATED board")
            speedup = row.get("speedup")
            gflops = row.get("gflops")
            rows.append(
                (
                    [
                        row.get("target", "?"),
                        _ms(row.get("median_ms")),
                        _ms(row.get("p90_ms")),
                        f"{float(row.get('cv', 0.0)) * 100:.1f}%",
                        f"{float(row.get('throughput', 0.0)):.1f}",
                        f"{speedup:.2f}x" if isinstance(speedup, (int, float)) else "-",
                        f"{gflops:.2f}" if isinstance(gflops, (int, float)) else "-",
                        ", ".join(n for n in notes if n),
                    ],
                    {"data-ok": "1"},
                )
            )
        parts.append(
            f"<h3>{_e(bench.name)}: {_e(model.get('name', 'model'))}</h3>"
            f'<p class="note">inputs {_e(inputs or "?")}; {_e(", ".join(sizes) or "size unknown")}; '
            f"source {_e(model.get('source', '?'))}; protocol {_e(proto or '?')}</p>"
            + _table(
                ["target", "median ms", "p90 ms", "CV", "items/s", "speed-up", "GFLOP/s", "notes"],
                rows,
                table_id=f"bench-table-b{i}",
                numeric=range(1, 7),
            )
            + f'<div class="chart"><svg id="bench-chart-b{i}" role="img" aria-label="latency per target"></svg></div>'
        )
    return "".join(parts)


def _metadata(runs: Sequence[RunView]) -> str:
    parts = []
    for view in runs:
        meta = dict(view.run.meta)
        rows: list[tuple[str, Any]] = [
            ("run directory", str(view.run.path)),
            ("progress", view.run.progress.note),
        ]
        for name in (
            "strategy",
            "settings",
            "seed",
            "objectives",
            "constraints",
            "space",
            "candidates",
            "budget",
        ):
            if name in meta:
                rows.append((name, describe_value(meta.pop(name)) or "-"))
        rows.append(("fingerprint", str(meta.pop("fingerprint", "-"))))
        model = meta.pop("model", None)
        if isinstance(model, Mapping):
            rows.append(
                ("model", describe_value({k: v for k, v in model.items() if k != "supernet"}))
            )
            if isinstance(model.get("supernet"), Mapping):
                rows.append(("supernet", describe_value(model["supernet"])))
        target = meta.pop("target", None)
        environment = meta.pop("environment", None)
        if isinstance(target, Mapping):
            fingerprint = (
                target.get("fingerprint") if isinstance(target.get("fingerprint"), Mapping) else {}
            )
            rows.append(
                (
                    "target",
                    f"{target.get('label', target.get('spec', '?'))} (kind {target.get('kind', '?')})",
                )
            )
            rows.append(("target fingerprint", describe_value(fingerprint)))
            threads = fingerprint.get("threads")
            cores = fingerprint.get("cores")
            rows.append(
                (
                    "timing threads",
                    f"{threads} (pinned by the target spec)"
                    if threads
                    else f"all {cores} usable cores"
                    if cores
                    else "-",
                )
            )
        if isinstance(environment, Mapping):
            rows.append(
                (
                    "compile/search cores",
                    f"{environment.get('cores', '?')} usable of "
                    f"{environment.get('machine_cores', '?')} on {environment.get('host', '?')}",
                )
            )
            rows.append(
                (
                    "machine",
                    f"{environment.get('cpu', '?')} ({environment.get('arch', '?')}), "
                    f"{environment.get('platform', '?')}",
                )
            )
            rows.append(
                (
                    "versions",
                    f"python {environment.get('python', '?')}, "
                    + describe_value(environment.get("versions") or {}),
                )
            )
        for name in ("started_at", "updated_at", "finished_at"):
            if name in meta:
                rows.append((name.replace("_", " "), _time(meta.pop(name))))
        for name in ("status", "pid", "stopped_reason", "finished_evaluations"):
            meta.pop(name, None)
        rows += [(name, describe_value(value)) for name, value in sorted(meta.items())]
        parts.append(
            f'<h3>{_e(view.label)}</h3><table class="meta"><tbody>'
            + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in rows)
            + "</tbody></table>"
        )
    return "".join(parts)


# -- data for the charts ------------------------------------------------------------------------


def _run_data(view: RunView, run_id: str, colour: str) -> dict[str, Any]:
    objective_names = [o.name for o in view.objectives]
    metrics = objective_names + [m for m in _extra_metrics(view)]
    points = []
    for n, (e, latency) in enumerate(zip(view.evaluations, view.latency, strict=True), start=1):
        values = dict(e.values)
        if latency is not None:
            values["latency_cv"] = latency.cv
        points.append(
            {
                "n": n,
                "key": e.key,
                "status": view.status(e),
                "v": values,
                "g": e.subnet.to_dict(),
                "diff": view.changes(e),
                "error": e.error,
                "fp": e.fingerprint,
                "lat": None if latency is None else _latency_data(latency),
            }
        )
    if any(v is not None for v in view.latency):
        metrics.append("latency_cv")
    return {
        "id": run_id,
        "label": view.label,
        "color": colour,
        "target": view.target,
        "strategy": view.run.meta.get("strategy", "?"),
        "objectives": [
            {"name": o.name, "direction": o.direction, "unit": o.unit} for o in view.objectives
        ],
        "constraints": [
            {
                "metric": c.metric,
                "op": c.op,
                "bound": c.bound,
                "text": constraint_text(c, view.objectives),
            }
            for c in view.constraints
        ],
        "metrics": metrics,
        "points": points,
        "hv": list(view.result.hypervolume),
        "front": [view.number(e) for e in view.result.pareto],  # by rank
    }


def _latency_data(s: LatencySummary) -> dict[str, Any]:
    return {
        "s": list(s.samples),
        "median": s.median,
        "q25": s.q25,
        "q75": s.q75,
        "cv": s.cv,
        "noisy": s.noisy,
        "re": s.remeasures,
    }


def _bench_data(bench: BenchDocument, bench_id: str) -> dict[str, Any]:
    rows = []
    for row in bench.results:
        samples = row.get("samples_s") if isinstance(row.get("samples_s"), list) else []
        rows.append(
            {
                "target": str(row.get("target", "?")),
                "ok": bool(row.get("ok")),
                "median_ms": row.get("median_ms"),
                "p90_ms": row.get("p90_ms"),
                "cv": row.get("cv", 0.0),
                "noisy": bool(row.get("noisy")),
                "speedup": row.get("speedup"),
                "samples_ms": [float(s) * 1e3 for s in samples if isinstance(s, (int, float))],
                "failure": row.get("failure"),
                "reason": row.get("reason"),
            }
        )
    return {"id": bench_id, "label": bench.name, "rows": rows}
