"""The report page in a real browser (Debian's headless Chromium): no errors, no requests, every point and row, links work.

`make test` installs Chromium where it can (root with apt); elsewhere these
tests skip with the reason, except under ``HWNAS_REQUIRE_BROWSER=1`` (CI), where they fail.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from headless_chromium import HeadlessChromium, chromium_path

from hwnas.search_core.report_page import write_report

BENCH = Path(__file__).parent / "data" / "bench_two_targets.json"
REQUIRE_ENV = "HWNAS_REQUIRE_BROWSER"


@pytest.fixture(scope="module")
def browser() -> Iterator[HeadlessChromium]:
    executable = chromium_path()
    if executable is None:
        reason = "Chromium is not installed (Debian: apt-get install chromium; `make test` does it as root)"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}")
        pytest.skip(reason)
    with HeadlessChromium(executable, width=1280, height=900) as chromium:
        yield chromium


def _load(browser: HeadlessChromium, page: Path) -> None:
    browser.open(page)
    browser.wait_until("document.body.dataset.ready === '1'")


def _count(browser: HeadlessChromium, selector: str) -> int:
    return browser.evaluate(f"document.querySelectorAll({json.dumps(selector)}).length")


def _visible_rows(browser: HeadlessChromium, table: str) -> int:
    return browser.evaluate(
        f"Array.from(document.querySelectorAll('#{table} tbody tr')).filter(r => !r.hidden).length"
    )


def test_the_report_of_two_runs_and_a_bench_renders_and_links(
    browser, two_small_runs, tmp_path
) -> None:
    a, b, ra, rb = two_small_runs
    page = write_report([a, b, BENCH], tmp_path / "report.html").path
    _load(browser, page)
    assert browser.errors() == []
    assert [u for u in browser.requests if not u.startswith("file:")] == []

    # the front chart: every evaluation of both two_small_runs, each status told apart
    for run_id, result in (("r0", ra), ("r1", rb)):
        infeasible = sum(e.ok and not e.feasible for e in result.evaluations)
        points = f'#front-chart .pt[data-run="{run_id}"]'
        assert _count(browser, points) == len(result.evaluations)
        assert _count(browser, points + '[data-status="front"]') == len(result.pareto)
        assert _count(browser, points + '[data-status="infeasible"]') == infeasible
        assert _count(browser, points + '[data-status="failed"]') == len(result.failed)
        assert _count(browser, f"#evaluations-{run_id} tbody tr") == len(result.evaluations)
        assert _count(browser, f"#front-{run_id} tbody tr") == len(result.pareto)
        assert _count(browser, f"#failures-{run_id} tbody tr") == len(result.failed)
        assert _count(browser, f"#latency-{run_id} tbody tr svg.dist") == len(
            result.evaluations
        ) - len(result.failed)
    assert _count(browser, "#front-chart .front-line") == 2
    assert _count(browser, "#front-chart .bound") == 1  # latency<=3ms on the x axis

    # the hypervolume chart: one curve per run, a vertex per evaluation
    lines = browser.evaluate(
        "Array.from(document.querySelectorAll('#hv-chart .hv-line')).map(l => l.getAttribute('points').split(' ').length)"
    )
    assert lines == [len(ra.evaluations), len(rb.evaluations)]

    # the bench: a row and a bar per measured target
    bench = json.loads(BENCH.read_text())["results"]
    assert _count(browser, "#bench-table-b0 tbody tr") == len(bench)
    assert _count(browser, "#bench-chart-b0 rect.bar") == sum(r["ok"] for r in bench)

    # hover a front point: the tooltip names its key, objectives and genes
    best = ra.pareto[1]
    n = ra.evaluations.index(best) + 1
    tooltip = browser.evaluate(
        f"""(() => {{
            const pt = document.querySelector('#front-chart .pt[data-run="r0"][data-n="{n}"]');
            const box = pt.getBoundingClientRect();
            pt.dispatchEvent(new MouseEvent('mousemove', {{bubbles: true, clientX: box.x + 2, clientY: box.y + 2}}));
            const tip = document.getElementById('tooltip');
            return [getComputedStyle(tip).display, tip.textContent];
        }})()"""
    )
    assert tooltip[0] == "block"
    assert best.key in tooltip[1] and "accuracy" in tooltip[1] and "macs" in tooltip[1]
    differing = [k for k, v in best.subnet.to_dict().items() if ra.pareto[0].subnet.get(k) != v]
    assert differing and all(f"{k}=" in tooltip[1] for k in differing)

    # click a failed point: its row is selected and the detail panel shows all its genes and the reason
    failed = ra.failed[0]
    n = ra.evaluations.index(failed) + 1
    browser.evaluate(
        f"""document.querySelector('#front-chart .pt[data-run="r0"][data-n="{n}"]').dispatchEvent(new MouseEvent('click', {{bubbles: true}}))"""
    )
    assert browser.evaluate(
        "document.querySelector('#evaluations-r0 tr.selected').dataset.n"
    ) == str(n)
    detail = browser.evaluate("document.getElementById('detail').textContent")
    assert "out of memory on the device" in detail
    assert all(f"{k}={v}" in detail for k, v in failed.subnet.to_dict().items())

    # another axis, then one run hidden: the chart redraws with the right points
    browser.evaluate(
        "const s = document.getElementById('x-metric'); s.value = 'macs'; s.dispatchEvent(new Event('change'))"
    )
    assert _count(browser, "#front-chart .pt") == len(ra.evaluations) + len(rb.evaluations)
    assert "macs" in browser.evaluate(
        "document.querySelector('#front-chart .axis-label').textContent"
    )
    browser.evaluate("document.querySelector('#front-legend input[data-run=\"r1\"]').click()")
    assert _count(browser, "#front-chart .pt") == len(ra.evaluations)
    assert _count(browser, "#hv-chart .hv-line") == 1

    # the status filter of a table
    browser.evaluate(
        'document.querySelector(\'.filters[data-table="evaluations-r0"] button[data-status="failed"]\').click()'
    )
    assert _visible_rows(browser, "evaluations-r0") == len(ra.failed)
    assert browser.errors() == []


def test_the_report_a_search_writes_renders_and_screenshots(
    browser, two_small_runs, tmp_path
) -> None:
    a, _, ra, _ = two_small_runs
    _load(browser, a / "report.html")
    assert browser.errors() == []
    assert _count(browser, "#front-chart .pt") == len(ra.evaluations)
    assert _count(browser, "#evaluations-r0 tbody tr") == len(ra.evaluations)
    shot = browser.screenshot(tmp_path / "report.png", height=1100)
    from matplotlib.image import imread

    pixels = imread(shot)
    assert pixels.shape[:2] == (1100, 1280)
    # a drawn page, not a blank one: many colours, real contrast
    rgb = (pixels[..., :3] * 255).astype(np.uint32)
    colours = np.unique(rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2])
    assert len(colours) > 100 and pixels.std() > 0.05
    print(f"screenshot: {shot}")
