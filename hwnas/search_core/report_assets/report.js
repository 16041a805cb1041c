// hwnas report: draws the charts of the page from the JSON in #report-data and links them to the tables.
// Plain DOM and SVG, no library and no network: the page is one self-contained file.
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("report-data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const W = 720, M = { left: 70, right: 20, top: 16 };
  const BOTTOM = 360; // y of the x axis in every chart; tick and axis labels take LABELS below it
  const LABELS = 46;
  const FAILED_BAND = 30; // below the labels, where failed evaluations (no metrics) are marked
  const runs = DATA.runs;
  const visible = new Set(runs.map((r) => r.id));
  let selected = null; // {run, n}

  // -- small helpers ----------------------------------------------------------------

  function svgEl(tag, attrs, parent) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }
  function htmlEl(tag, attrs, parent, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }
  function niceStep(span, count) {
    const raw = span / Math.max(1, count);
    const power = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / power;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * power;
  }
  function domain(values) {
    let lo = Math.min(...values), hi = Math.max(...values);
    if (!isFinite(lo) || !isFinite(hi)) return [0, 1];
    if (lo === hi) { const pad = Math.abs(lo) * 0.05 || 0.5; lo -= pad; hi += pad; }
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  }
  function scale(d, r) {
    return (v) => r[0] + ((v - d[0]) / (d[1] - d[0])) * (r[1] - r[0]);
  }
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) return "-";
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(2) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "K";
    if (a >= 100) return v.toFixed(1);
    if (a >= 1) return v.toFixed(3);
    return v.toPrecision(4);
  }
  function tickFmt(v, step) {
    // as many decimals as the tick step needs, so 0.1, 0.2 do not read 0.1000, 0.2000
    if (Math.abs(v) >= 1e4 || step >= 1e4) return fmt(v);
    const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    return v.toFixed(Math.min(decimals, 8));
  }
  function unitOf(run, metric) {
    const o = run.objectives.find((x) => x.name === metric);
    return o && o.unit && o.unit !== "fraction" && o.unit !== "count" ? " " + o.unit : "";
  }
  function axisLabel(metric) {
    const o = runs.map((r) => r.objectives.find((x) => x.name === metric)).find((x) => x);
    if (!o) return metric;
    const unit = o.unit && o.unit !== "fraction" && o.unit !== "count" ? ", " + o.unit : "";
    return `${metric} (${o.direction === "max" ? "higher" : "lower"} is better${unit})`;
  }
  function axes(svg, xd, yd, xl, yl) {
    const x = scale(xd, [M.left, W - M.right]);
    const y = scale(yd, [BOTTOM, M.top]);
    const g = svgEl("g", { class: "axes" }, svg);
    const xs = niceStep(xd[1] - xd[0], 6), ys = niceStep(yd[1] - yd[0], 6);
    for (let v = Math.ceil(xd[0] / xs) * xs; v <= xd[1]; v += xs) {
      svgEl("line", { x1: x(v), x2: x(v), y1: M.top, y2: BOTTOM, class: "grid" }, g);
      svgEl("text", { x: x(v), y: BOTTOM + 16, class: "tick", "text-anchor": "middle" }, g).textContent = tickFmt(v, xs);
    }
    for (let v = Math.ceil(yd[0] / ys) * ys; v <= yd[1]; v += ys) {
      svgEl("line", { x1: M.left, x2: W - M.right, y1: y(v), y2: y(v), class: "grid" }, g);
      svgEl("text", { x: M.left - 6, y: y(v) + 4, class: "tick", "text-anchor": "end" }, g).textContent = tickFmt(v, ys);
    }
    svgEl("rect", { x: M.left, y: M.top, width: W - M.left - M.right, height: BOTTOM - M.top, class: "frame" }, g);
    svgEl("text", { x: (M.left + W - M.right) / 2, y: BOTTOM + 34, class: "axis-label", "text-anchor": "middle" }, g).textContent = xl;
    svgEl("text", { x: 16, y: (M.top + BOTTOM) / 2, class: "axis-label", "text-anchor": "middle",
      transform: `rotate(-90 16 ${(M.top + BOTTOM) / 2})` }, g).textContent = yl;
    return { x, y };
  }

  // -- tooltip and selection ----------------------------------------------------------

  const tip = htmlEl("div", { id: "tooltip", role: "tooltip" }, document.body);
  function pointLines(run, p) {
    const lines = [[`${run.label} #${p.n}`, p.status]];
    lines.push(["key", p.key]);
    for (const o of run.objectives) lines.push([o.name, p.v[o.name] === undefined ? "-" : fmt(p.v[o.name]) + unitOf(run, o.name)]);
    for (const m of ["macs", "params"]) if (p.v[m] !== undefined && !run.objectives.some((o) => o.name === m)) lines.push([m, fmt(p.v[m])]);
    if (p.lat) lines.push(["latency CV", (p.lat.cv * 100).toFixed(1) + "%" + (p.lat.noisy ? " (noisy)" : "")]);
    if (p.error) lines.push(["error", p.error]);
    lines.push(["genes vs front #1", p.diff || "(the reference subnet)"]);
    if (run.target) lines.push(["target", run.target]);
    lines.push(["fingerprint", p.fp || "-"]);
    return lines;
  }
  function showTip(evt, lines) {
    tip.replaceChildren();
    for (const [k, v] of lines) {
      const row = htmlEl("div", {}, tip);
      htmlEl("b", {}, row, k + ": ");
      htmlEl("span", {}, row, v);
    }
    tip.style.display = "block";
    const pad = 14;
    let left = evt.pageX + pad, top = evt.pageY + pad;
    if (left + tip.offsetWidth > window.scrollX + window.innerWidth) left = evt.pageX - tip.offsetWidth - pad;
    tip.style.left = left + "px";
    tip.style.top = top + "px";
  }
  function hideTip() { tip.style.display = "none"; }

  function select(runId, n, scroll) {
    selected = { run: runId, n };
    document.querySelectorAll(".pt.selected, tr.selected").forEach((e) => e.classList.remove("selected"));
    document.querySelectorAll(`.pt[data-run="${runId}"][data-n="${n}"], tr[data-run="${runId}"][data-n="${n}"]`)
      .forEach((e) => e.classList.add("selected"));
    const row = document.querySelector(`#evaluations tr[data-run="${runId}"][data-n="${n}"]`);
    if (row && scroll) {
      const box = row.closest(".scroll");
      if (box) box.scrollTop = row.offsetTop - box.clientHeight / 2;
    }
    showDetail(runs.find((r) => r.id === runId), n);
  }
  function showDetail(run, n) {
    const panel = document.getElementById("detail");
    if (!panel || !run) return;
    const p = run.points[n - 1];
    panel.replaceChildren();
    htmlEl("h3", {}, panel, `${run.label} #${p.n} (${p.status})`);
    const dl = htmlEl("dl", {}, panel);
    for (const [k, v] of pointLines(run, p).slice(1)) {
      if (k === "genes vs front #1") continue;
      htmlEl("dt", {}, dl, k);
      htmlEl("dd", {}, dl, v);
    }
    htmlEl("h4", {}, panel, "genes");
    const genes = htmlEl("div", { class: "genes" }, panel);
    const changed = new Set((p.diff || "").split(" ").map((s) => s.split("=")[0]));
    for (const [k, v] of Object.entries(p.g)) {
      htmlEl("span", { class: changed.has(k) ? "gene changed" : "gene" }, genes, `${k}=${v}`);
    }
    if (p.lat) {
      htmlEl("h4", {}, panel, `latency samples (${p.lat.s.length}, CV ${(p.lat.cv * 100).toFixed(1)}%, re-measured ${p.lat.re === null ? "?" : p.lat.re}x)`);
      const svg = svgEl("svg", { viewBox: "0 0 300 40", class: "samples" }, panel);
      const d = domain(p.lat.s);
      const x = scale(d, [8, 292]);
      svgEl("line", { x1: x(p.lat.q25), x2: x(p.lat.q75), y1: 20, y2: 20, class: "iqr" }, svg);
      svgEl("line", { x1: x(p.lat.median), x2: x(p.lat.median), y1: 8, y2: 32, class: "median" }, svg);
      p.lat.s.forEach((s, i) => svgEl("circle", { cx: x(s), cy: 12 + (i % 5) * 4, r: 2.2, class: "sample" }, svg));
      htmlEl("div", { class: "range" }, panel, `${fmt(d[0])} … ${fmt(d[1])}${unitOf(run, "latency")}`);
    }
  }

  // -- the Pareto front chart ---------------------------------------------------------------

  const xSel = document.getElementById("x-metric"), ySel = document.getElementById("y-metric");
  function metricChoices() {
    const all = [];
    for (const r of runs) for (const m of r.metrics) if (!all.includes(m)) all.push(m);
    return all;
  }
  function defaultAxes() {
    const objs = runs.length ? runs[0].objectives : [];
    if (objs.length === 1) return ["#", objs[0].name];
    const mins = objs.filter((o) => o.direction === "min"), maxs = objs.filter((o) => o.direction === "max");
    // cost on x, quality on y, as people draw accuracy-latency fronts
    if (objs.length === 2 && mins.length === 1 && maxs.length === 1) return [mins[0].name, maxs[0].name];
    return [objs[0] ? objs[0].name : "#", objs[1] ? objs[1].name : "#"];
  }
  function value(p, metric) { return metric === "#" ? p.n : p.v[metric]; }

  function drawFront() {
    const svg = document.getElementById("front-chart");
    if (!svg) return;
    svg.replaceChildren();
    const xm = xSel.value, ym = ySel.value;
    const shown = runs.filter((r) => visible.has(r.id));
    const anyFailed = shown.some((r) => r.points.some((p) => p.status === "failed"));
    svg.setAttribute("viewBox", `0 0 ${W} ${BOTTOM + LABELS + (anyFailed ? FAILED_BAND : 0)}`);
    const plotted = [];
    for (const r of shown) for (const p of r.points) {
      if (p.status !== "failed" && value(p, xm) !== undefined && value(p, ym) !== undefined) plotted.push([r, p]);
    }
    const xd = domain(plotted.map(([, p]) => value(p, xm)));
    const yd = domain(plotted.map(([, p]) => value(p, ym)));
    const { x, y } = axes(svg, xd, yd, xm === "#" ? "evaluation" : axisLabel(xm), ym === "#" ? "evaluation" : axisLabel(ym));
    // constraint bounds on a shown axis, dashed (once, when several runs share one)
    const bounds = new Map();
    for (const r of shown) for (const c of r.constraints) bounds.set(c.text, c);
    for (const c of bounds.values()) {
      if (c.metric === xm && c.bound >= xd[0] && c.bound <= xd[1]) {
        svgEl("line", { x1: x(c.bound), x2: x(c.bound), y1: M.top, y2: BOTTOM, class: "bound" }, svg);
        svgEl("text", { x: x(c.bound) + 4, y: M.top + 12, class: "bound-label" }, svg).textContent = c.text;
      }
      if (c.metric === ym && c.bound >= yd[0] && c.bound <= yd[1]) {
        svgEl("line", { x1: M.left, x2: W - M.right, y1: y(c.bound), y2: y(c.bound), class: "bound" }, svg);
        svgEl("text", { x: W - M.right - 4, y: y(c.bound) - 4, class: "bound-label", "text-anchor": "end" }, svg).textContent = c.text;
      }
    }
    const failedY = BOTTOM + LABELS + FAILED_BAND / 2 - 4;
    for (const r of shown) {
      const g = svgEl("g", { class: "run", "data-run": r.id }, svg);
      // the front as a staircase when both axes are this run's two objectives
      const objNames = r.objectives.map((o) => o.name);
      if (r.objectives.length === 2 && objNames.includes(xm) && objNames.includes(ym) && xm !== ym) {
        const front = r.points.filter((p) => p.status === "front").sort((a, b) => value(a, xm) - value(b, xm));
        if (front.length) {
          svgEl("polyline", { points: front.map((p) => `${x(value(p, xm))},${y(value(p, ym))}`).join(" "),
            class: "front-line", stroke: r.color }, g);
        }
      }
      const total = r.points.length;
      for (const p of r.points) {
        let node;
        if (p.status === "failed") {
          const cx = M.left + ((p.n - 0.5) / Math.max(1, total)) * (W - M.left - M.right), s = 4;
          node = svgEl("path", { d: `M${cx - s},${failedY - s}L${cx + s},${failedY + s}M${cx - s},${failedY + s}L${cx + s},${failedY - s}`,
            class: "pt failed" }, g);
        } else {
          const vx = value(p, xm), vy = value(p, ym);
          if (vx === undefined || vy === undefined) continue;
          if (p.status === "infeasible") {
            const cx = x(vx), cy = y(vy), s = 4;
            node = svgEl("rect", { x: cx - s, y: cy - s, width: 2 * s, height: 2 * s, class: "pt infeasible", stroke: r.color }, g);
          } else {
            node = svgEl("circle", { cx: x(vx), cy: y(vy), r: p.status === "front" ? 5.5 : 3.5,
              class: "pt " + p.status, fill: r.color }, g);
          }
        }
        node.setAttribute("data-run", r.id);
        node.setAttribute("data-n", p.n);
        node.setAttribute("data-status", p.status);
        node.addEventListener("mousemove", (evt) => showTip(evt, pointLines(r, p)));
        node.addEventListener("mouseleave", hideTip);
        node.addEventListener("click", () => select(r.id, p.n, true));
      }
    }
    if (anyFailed) {
      svgEl("text", { x: M.left - 6, y: failedY + 4, class: "tick failed-label", "text-anchor": "end" }, svg).textContent = "failed";
    }
    // front points on top of the rest
    svg.querySelectorAll(".pt.front").forEach((n) => n.parentNode.appendChild(n));
    if (selected) document.querySelectorAll(`.pt[data-run="${selected.run}"][data-n="${selected.n}"]`).forEach((e) => e.classList.add("selected"));
    drawLegend();
  }

  function drawLegend() {
    const box = document.getElementById("front-legend");
    if (!box) return;
    box.replaceChildren();
    for (const r of runs) {
      const label = htmlEl("label", { class: "run-toggle" }, box);
      const cb = htmlEl("input", { type: "checkbox", "data-run": r.id }, label);
      cb.checked = visible.has(r.id);
      cb.addEventListener("change", () => { cb.checked ? visible.add(r.id) : visible.delete(r.id); drawFront(); drawHV(); });
      htmlEl("span", { class: "swatch", style: `background:${r.color}` }, label);
      label.appendChild(document.createTextNode(r.label));
    }
    const shapes = [["front", "on the Pareto front"], ["feasible", "feasible"], ["infeasible", "violates a constraint"], ["failed", "failed (no metrics)"]];
    for (const [cls, text] of shapes) {
      const item = htmlEl("span", { class: "shape-key" }, box);
      const s = svgEl("svg", { width: 14, height: 14, viewBox: "0 0 14 14" }, item);
      if (cls === "failed") svgEl("path", { d: "M3,3L11,11M3,11L11,3", class: "failed-key" }, s);
      else if (cls === "infeasible") svgEl("rect", { x: 3, y: 3, width: 8, height: 8, class: "infeasible-key" }, s);
      else svgEl("circle", { cx: 7, cy: 7, r: cls === "front" ? 5 : 3.5, class: cls + "-key" }, s);
      item.appendChild(document.createTextNode(text));
    }
  }

  // -- the hypervolume chart ------------------------------------------------------------------

  function drawHV() {
    const svg = document.getElementById("hv-chart");
    if (!svg) return;
    svg.replaceChildren();
    svg.setAttribute("viewBox", `0 0 ${W} ${BOTTOM + LABELS}`);
    const shown = runs.filter((r) => visible.has(r.id) && r.hv.length);
    const maxN = Math.max(1, ...shown.map((r) => r.hv.length));
    const maxHV = Math.max(0, ...shown.map((r) => Math.max(...r.hv)));
    const xd = [0, maxN], yd = [0, maxHV > 0 ? maxHV * 1.05 : 1];
    const { x, y } = axes(svg, xd, yd, "evaluations", "hypervolume");
    const legend = document.getElementById("hv-legend");
    if (legend) legend.replaceChildren();
    for (const r of shown) {
      const pts = r.hv.map((v, i) => `${x(i + 1)},${y(v)}`).join(" ");
      svgEl("polyline", { points: pts, class: "hv-line", stroke: r.color, "data-run": r.id }, svg);
      if (legend) {
        const item = htmlEl("span", {}, legend);
        htmlEl("span", { class: "swatch", style: `background:${r.color}` }, item);
        item.appendChild(document.createTextNode(`${r.label} (${r.strategy}): ${r.hv[r.hv.length - 1].toFixed(4)} after ${r.hv.length}`));
      }
    }
    const guide = svgEl("line", { y1: M.top, y2: BOTTOM, class: "guide", visibility: "hidden" }, svg);
    const hit = svgEl("rect", { x: M.left, y: M.top, width: W - M.left - M.right, height: BOTTOM - M.top, class: "hit" }, svg);
    hit.addEventListener("mousemove", (evt) => {
      const box = svg.getBoundingClientRect();
      const px = ((evt.clientX - box.left) / box.width) * W;
      const n = Math.min(maxN, Math.max(1, Math.round(xd[0] + ((px - M.left) / (W - M.left - M.right)) * (xd[1] - xd[0]))));
      guide.setAttribute("x1", x(n)); guide.setAttribute("x2", x(n)); guide.setAttribute("visibility", "visible");
      showTip(evt, [["after evaluation", String(n)], ...shown.map((r) => [r.label, r.hv[Math.min(n, r.hv.length) - 1].toFixed(4)])]);
    });
    hit.addEventListener("mouseleave", () => { guide.setAttribute("visibility", "hidden"); hideTip(); });
  }

  // -- benchmark bars ---------------------------------------------------------------------------

  function drawBench(b) {
    const svg = document.getElementById("bench-chart-" + b.id);
    if (!svg) return;
    const rowH = 34, top = 10, left = 230, right = 90;
    const height = top + rowH * b.rows.length + 40;
    svg.setAttribute("viewBox", `0 0 ${W} ${height}`);
    const ok = b.rows.filter((r) => r.ok);
    const maxV = Math.max(1e-9, ...ok.map((r) => Math.max(r.p90_ms, ...(r.samples_ms || []))));
    const x = scale([0, maxV * 1.05], [left, W - right]);
    const g = svgEl("g", { class: "axes" }, svg);
    const xs = niceStep(maxV * 1.05, 6);
    const bottom = top + rowH * b.rows.length;
    for (let v = 0; v <= maxV * 1.05; v += xs) {
      svgEl("line", { x1: x(v), x2: x(v), y1: top, y2: bottom, class: "grid" }, g);
      svgEl("text", { x: x(v), y: bottom + 16, class: "tick", "text-anchor": "middle" }, g).textContent = tickFmt(v, xs);
    }
    svgEl("text", { x: (left + W - right) / 2, y: bottom + 34, class: "axis-label", "text-anchor": "middle" }, g)
      .textContent = "latency, ms (bar: median; whisker: p90; dots: samples)";
    b.rows.forEach((r, i) => {
      const cy = top + i * rowH + rowH / 2;
      svgEl("text", { x: left - 8, y: cy + 4, class: "tick", "text-anchor": "end" }, svg).textContent = r.target;
      if (!r.ok) {
        svgEl("text", { x: left + 6, y: cy + 4, class: "bench-failed" }, svg).textContent = `failed (${r.failure}): ${r.reason}`.slice(0, 90);
        return;
      }
      const bar = svgEl("rect", { x: left, y: cy - 10, width: Math.max(1, x(r.median_ms) - left), height: 20, class: "bar", "data-target": r.target }, svg);
      svgEl("line", { x1: x(r.median_ms), x2: x(r.p90_ms), y1: cy, y2: cy, class: "whisker" }, svg);
      svgEl("line", { x1: x(r.p90_ms), x2: x(r.p90_ms), y1: cy - 6, y2: cy + 6, class: "whisker" }, svg);
      (r.samples_ms || []).forEach((s, j) => svgEl("circle", { cx: x(s), cy: cy - 6 + (j % 4) * 4, r: 1.8, class: "sample" }, svg));
      svgEl("text", { x: x(Math.max(r.p90_ms, ...(r.samples_ms || [0]))) + 6, y: cy + 4, class: "tick" }, svg).textContent =
        `${fmt(r.median_ms)} ms` + (r.speedup ? ` (${r.speedup.toFixed(2)}x)` : "");
      const lines = [["target", r.target], ["median", fmt(r.median_ms) + " ms"], ["p90", fmt(r.p90_ms) + " ms"],
        ["CV", (r.cv * 100).toFixed(1) + "%" + (r.noisy ? " (noisy)" : "")], ["samples", String((r.samples_ms || []).length)]];
      bar.addEventListener("mousemove", (evt) => showTip(evt, lines));
      bar.addEventListener("mouseleave", hideTip);
    });
  }

  // -- tables: row selection and status filters ------------------------------------------------

  document.querySelectorAll("tr[data-run][data-n]").forEach((row) => {
    row.addEventListener("click", () => select(row.dataset.run, Number(row.dataset.n), false));
  });
  document.querySelectorAll(".filters").forEach((bar) => {
    const table = document.getElementById(bar.dataset.table);
    bar.querySelectorAll("button").forEach((button) => {
      button.addEventListener("click", () => {
        bar.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b === button));
        const want = button.dataset.status;
        table.querySelectorAll("tbody tr").forEach((tr) => {
          tr.hidden = !(want === "all" || tr.dataset.status === want || (want === "feasible" && tr.dataset.status === "front"));
        });
      });
    });
  });

  // -- start ------------------------------------------------------------------------------------

  if (xSel && ySel) {
    const choices = ["#", ...metricChoices()];
    for (const sel of [xSel, ySel]) {
      for (const m of choices) htmlEl("option", { value: m }, sel, m === "#" ? "evaluation #" : m);
    }
    const [dx, dy] = defaultAxes();
    xSel.value = dx; ySel.value = dy;
    xSel.addEventListener("change", drawFront);
    ySel.addEventListener("change", drawFront);
  }
  drawFront();
  drawHV();
  (DATA.benches || []).forEach(drawBench);
  const first = runs.find((r) => r.points.length);
  if (first) {
    showDetail(first, first.front.length ? first.front[0] : 1);
  }
  document.body.dataset.ready = "1";
})();
