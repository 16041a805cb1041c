"""``hwnas report`` and the report page without a browser: its data, its tables, bad input, runs in progress or killed."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_main

from hwnas.search_core.report_data import (
    config_changes,
    format_changes,
    format_config,
    run_views,
)
from hwnas.search_core.report_inputs import read_input
from hwnas.search_core.report_page import write_report

DATA = Path(__file__).parent / "data"
BENCH = DATA / "bench_two_targets.json"


class _Page(HTMLParser):
    """Rows of every table by id, and the embedded chart data."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.rows: dict[str, list[dict[str, str]]] = {}
        self.data: dict = {}
        self._table: str | None = None
        self._in_body = False
        self._script = False
        self._chunks: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id") or ""
            self.rows.setdefault(self._table, [])
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body and self._table is not None:
            self.rows[self._table].append({k: v or "" for k, v in a.items()})
        elif tag == "script" and a.get("id") == "report-data":
            self._script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "tbody":
            self._in_body = False
        elif tag == "table":
            self._table = None
        elif tag == "script" and self._script:
            self._script = False
            self.data = json.loads("".join(self._chunks))

    def handle_data(self, data: str) -> None:
        if self._script:
            self._chunks.append(data)


def test_search_writes_a_report_that_holds_every_evaluation(two_small_runs) -> None:
    run, _, result, _ = two_small_runs
    page = _Page((run / "report.html").read_text())
    evaluations = page.rows["evaluations-r0"]
    assert len(evaluations) == len(result.evaluations)
    statuses = [r["data-status"] for r in evaluations]
    assert statuses.count("failed") == len(result.failed) > 0
    assert statuses.count("front") == len(result.pareto) > 0
    infeasible = sum(e.ok and not e.feasible for e in result.evaluations)
    assert statuses.count("infeasible") == infeasible > 0
    assert [r["data-n"] for r in page.rows["front-r0"]] == [
        str(result.evaluations.index(e) + 1) for e in result.pareto
    ]
    assert len(page.rows["failures-r0"]) == len(result.failed)
    assert len(page.rows["latency-r0"]) == len(result.evaluations) - len(result.failed)

    (data,) = page.data["runs"]
    assert [p["key"] for p in data["points"]] == [e.key for e in result.evaluations]
    # one run: the same hypervolume curve as the search itself computed
    assert data["hv"] == pytest.approx(list(result.hypervolume))
    failed = [p for p in data["points"] if p["status"] == "failed"]
    assert all("out of memory on the device" in p["error"] for p in failed)
    assert data["constraints"] == [
        {"metric": "latency", "op": "<=", "bound": 3.0, "text": "latency<=3ms"}
    ]
    first = next(p for p in data["points"] if p["key"] == result.pareto[0].key)
    assert first["diff"] == "" and first["g"] == result.pareto[0].subnet.to_dict()
    assert all(p["diff"] for p in data["points"] if p["key"] != first["key"])
    assert "finished: 24 of 24 evaluations" in (run / "report.html").read_text()


def test_latency_noise_is_summarised_from_the_samples(two_small_runs) -> None:
    run, _, result, _ = two_small_runs
    (view,) = run_views([read_input(run)])
    for evaluation, summary in zip(view.evaluations, view.latency, strict=True):
        if not evaluation.ok:
            assert summary is None
            continue
        samples = evaluation.latency_samples
        assert summary.median == pytest.approx(sorted(samples)[len(samples) // 2])
        cv = float(np.std(samples, ddof=1) / np.mean(samples))
        assert summary.cv == pytest.approx(cv)
        assert summary.noisy == (cv > 0.05) and summary.remeasures is None
    assert any(s.noisy for s in view.latency if s) and not all(s.noisy for s in view.latency if s)


def test_several_runs_and_a_bench_file_in_one_page(two_small_runs, tmp_path, capsys) -> None:
    a, b, ra, rb = two_small_runs
    out = tmp_path / "compare.html"
    code, stdout, stderr = run_main(
        ["report", str(a), str(b), str(BENCH), "--out", str(out)], capsys
    )
    assert code == 0, stderr
    assert f"wrote {out}" in stdout and stderr == ""
    page = _Page(out.read_text())
    assert len(page.rows["evaluations-r0"]) == len(ra.evaluations)
    assert len(page.rows["evaluations-r1"]) == len(rb.evaluations)
    runs = page.data["runs"]
    assert [r["strategy"] for r in runs] == ["random", "nsga2"]
    # shared normalisation: both curves are measured in the same box, so they differ from each run's own
    own = [list(ra.hypervolume), list(rb.hypervolume)]
    assert [r["hv"] for r in runs] != own
    assert all(h == sorted(h) for h in (r["hv"] for r in runs))
    bench = json.loads(BENCH.read_text())
    assert len(page.rows["bench-table-b0"]) == len(bench["results"])
    (chart,) = page.data["benches"]
    assert [r["target"] for r in chart["rows"]] == [r["target"] for r in bench["results"]]
    assert chart["rows"][0]["samples_ms"] == pytest.approx(
        [s * 1e3 for s in bench["results"][0]["samples_s"]]
    )


def test_the_page_loads_nothing_and_escapes_what_the_store_holds(two_small_runs, tmp_path) -> None:
    run, _, _, _ = two_small_runs
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    hostile = "</script><script>alert(1)</script>"
    with sqlite3.connect(copy / "search.sqlite") as db:
        db.execute("UPDATE evaluations SET error = ? WHERE error IS NOT NULL", (hostile,))
    text = write_report([copy], tmp_path / "r.html").path.read_text()
    assert "<script>alert(1)" not in text
    assert _Page(text).data["runs"][0]["points"]  # the data block still parses
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)  # no external resource
    assert "default-src 'none'" in text


def test_search_table_names_the_genes_compactly(two_small_runs, capsys) -> None:
    from hwnas.cli.search_cmd import _report

    _, _, result, _ = two_small_runs
    _report(result, as_json=False)
    lines = capsys.readouterr().out.splitlines()
    first = result.pareto[0].subnet.to_dict()
    for rank, evaluation in enumerate(result.pareto):
        (line,) = [line for line in lines if evaluation.key in line]
        config = evaluation.subnet.to_dict()
        if rank == 0:
            assert format_config(config) in line  # every gene, by name
            continue
        differ = [k for k in config if k not in first or first[k] != config[k]]
        same = [k for k in config if k not in differ]
        assert differ and all(f"{k}={config[k]}" in line for k in differ)
        assert all(f"{k}=" not in line for k in same)  # only what differs from row 1
    assert any("report.html" in line for line in lines)


def test_config_changes_list_inactive_genes_and_group_blocks() -> None:
    reference = {"depth": 3, "w1": 8, "w3": 16}
    assert config_changes({"depth": 2, "w1": 8}, reference) == [("depth", 2), ("w3", None)]
    assert format_changes(config_changes({"depth": 2, "w1": 8}, reference)) == "depth=2 w3=-"
    assert config_changes(reference, reference) == []
    deep = {
        "s1.depth": 3,
        "s1.b0.kernel": 5,
        "s1.b0.expand": 4,
        "s1.b2.kernel": 3,
        "s1.b2.expand": 6,
    }
    shallow = {"s1.depth": 2, "s1.b0.kernel": 7, "s1.b0.expand": 4}
    assert format_changes(config_changes(shallow, deep)) == "s1.depth=2 s1.b0.kernel=7 s1.b2=-"
    assert format_config(deep) == "s1.depth=3 s1.b0.kernel/expand=5/4 s1.b2.kernel/expand=3/6"


# -- bad input ---------------------------------------------------------------------------


def _garbage(tmp_path: Path) -> Path:
    (tmp_path / "search.sqlite").write_bytes(b"this is not a database" * 100)
    return tmp_path


def _truncated(tmp_path: Path, run: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    store = tmp_path / "run" / "search.sqlite"
    with sqlite3.connect(store) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.write_bytes(store.read_bytes()[: store.stat().st_size // 3])
    return tmp_path / "run"


def _foreign_sqlite(tmp_path: Path) -> Path:
    with sqlite3.connect(tmp_path / "search.sqlite") as db:
        db.execute("CREATE TABLE t (x)")
    return tmp_path


def _damaged_row(tmp_path: Path, run: Path) -> Path:
    shutil.copytree(run, tmp_path / "run")
    with sqlite3.connect(tmp_path / "run" / "search.sqlite") as db:
        db.execute("UPDATE evaluations SET config = '{not json' WHERE seq = 2")
    return tmp_path / "run"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp, run: tmp / "nowhere", "no such file or directory"),
        (lambda tmp, run: tmp, "is not a search run directory (no search.sqlite)"),
        (lambda tmp, run: _garbage(tmp), "corrupt or unreadable"),
        (_truncated, "corrupt or unreadable"),
        (lambda tmp, run: _foreign_sqlite(tmp), "is not an hwnas run store (tables: t)"),
        (_damaged_row, "evaluation 2 config is not valid JSON"),
        (
            lambda tmp, run: (tmp / "x.json").write_text("[1, 2]") and tmp / "x.json",
            "is not a `hwnas bench --json` result",
        ),
        (
            lambda tmp, run: (tmp / "x.json").write_text("{nope") and tmp / "x.json",
            "not a readable JSON file",
        ),
    ],
    ids=[
        "missing",
        "empty-dir",
        "garbage",
        "truncated",
        "foreign-sqlite",
        "damaged-row",
        "other-json",
        "bad-json",
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    two_small_runs, tmp_path, capsys, make, message
) -> None:
    run = two_small_runs[0]
    target = make(tmp_path, run)
    code, _, stderr = run_main(["report", str(target), "--out", str(tmp_path / "r.html")], capsys)
    assert code == 2, stderr
    assert message in stderr and stderr.startswith("error: ") and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) <= 2
    assert not (tmp_path / "r.html").exists()


def test_out_that_is_a_directory_is_refused(two_small_runs, tmp_path, capsys) -> None:
    code, _, stderr = run_main(["report", str(two_small_runs[0]), "--out", str(tmp_path)], capsys)
    assert code == 2 and "is a directory" in stderr


def test_a_store_from_before_runs_recorded_their_progress_still_reports(
    two_small_runs, tmp_path, capsys
) -> None:
    shutil.copytree(two_small_runs[0], tmp_path / "old")
    with sqlite3.connect(tmp_path / "old" / "search.sqlite") as db:
        db.execute(
            "DELETE FROM meta WHERE name IN ('status', 'pid', 'budget', 'environment', 'started_at',"
            " 'finished_at', 'stopped_reason', 'finished_evaluations')"
        )
    code, _, stderr = run_main(
        ["report", str(tmp_path / "old"), "--out", str(tmp_path / "r.html")], capsys
    )
    assert code == 0, stderr
    assert "does not record whether its search finished" in stderr
    assert len(_Page((tmp_path / "r.html").read_text()).rows["evaluations-r0"]) == 24


# -- runs in progress, killed -------------------------------------------------------------------


_SLOW_SEARCH = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    import hwnas
    from report_runs import space, evaluate, OBJECTIVES, CONSTRAINT

    def slow(subnet):
        time.sleep(0.15)
        return evaluate(subnet)

    hwnas.search(space(), slow, OBJECTIVES, strategy="random", budget=200, batch_size=2,
                 constraints=[CONSTRAINT], out={out!r}, seed=0)
    """
)


def _stored(run: Path) -> int:
    try:
        with sqlite3.connect(f"file:{run / 'search.sqlite'}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM evaluations").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_a_run_in_progress_then_killed_reports_what_is_there(tmp_path, capsys) -> None:
    run = tmp_path / "run"
    script = tmp_path / "search.py"
    script.write_text(_SLOW_SEARCH.format(tests=str(Path(__file__).parent), out=str(run)))
    process = subprocess.Popen([sys.executable, str(script)], stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while _stored(run) < 4:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            assert time.monotonic() < deadline, "the search stored nothing within 2 minutes"
            time.sleep(0.2)
        code, _, stderr = run_main(
            ["report", str(run), "--out", str(tmp_path / "live.html")], capsys
        )
        assert code == 0, stderr
        assert f"INCOMPLETE: in progress (process {process.pid} is still searching)" in stderr
        live = _Page((tmp_path / "live.html").read_text())
        assert len(live.rows["evaluations-r0"]) >= 4
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    stored = _stored(run)
    code, _, stderr = run_main(["report", str(run), "--out", str(tmp_path / "killed.html")], capsys)
    assert code == 0, stderr
    assert (
        f"process {process.pid} is gone: killed, interrupted or crashed) after {stored} of 200"
        in stderr
    )
    text = (tmp_path / "killed.html").read_text()
    assert "INCOMPLETE" in text and "--resume" in text
    assert len(_Page(text).rows["evaluations-r0"]) == stored
