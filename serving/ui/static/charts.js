// Line charts drawn with uPlot (vendored: uplot.iife.min.js, see UPLOT_LICENSE) from a data-chart attribute:
// {"x": [...], "series": {"label": [...], ...}}.
const WHOLE = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];
const PALETTE = ["#0969da", "#1a7f37", "#bf8700", "#8250df", "#cf222e", "#57606a"];

function drawLines(el) {
  const spec = JSON.parse(el.dataset.chart);
  const labels = Object.keys(spec.series);
  const opts = {
    width: Math.min(900, el.clientWidth || 900), height: 320,
    scales: { x: { time: false } },
    // Whole numbers only on both axes (versions and counts): no 1.5th version.
    axes: [{ label: "registry version", incrs: WHOLE }, { label: "objects", incrs: WHOLE }],
    series: [{ label: "version" }].concat(labels.map((l, i) => ({ label: l, stroke: PALETTE[i % PALETTE.length], width: 2 }))),
  };
  return new uPlot(opts, [spec.x].concat(labels.map((l) => spec.series[l])), el);
}

// A histogram from a data-chart attribute {"x": bin centres, "series": {"rows": [...]}, "xlabel": name}: bars
// drawn by uPlot's bars path builder.
function drawBars(el) {
  const spec = JSON.parse(el.dataset.chart);
  const label = Object.keys(spec.series)[0];
  const opts = {
    width: Math.min(900, el.clientWidth || 900), height: 220,
    scales: { x: { time: false } },
    axes: [{ label: spec.xlabel || "value" }, { label: label }],
    series: [{ label: spec.xlabel || "value" },
             { label: label, stroke: PALETTE[0], fill: PALETTE[0] + "55", paths: uPlot.paths.bars({ size: [0.9] }) }],
  };
  return new uPlot(opts, [spec.x, spec.series[label]], el);
}

// The skew chart: two share series (training set, served) over the same bins, bars side by side; the x axis
// labelled with the bins' names ({"x": [0..n), "labels": [...], "series": {...}}).
function drawShares(el) {
  const spec = JSON.parse(el.dataset.chart);
  const names = Object.keys(spec.series);
  const opts = {
    width: Math.min(900, el.clientWidth || 900), height: 220,
    // every bin whole (half a bin of room at each end), shares from 0: bars never start mid-air
    scales: { x: { time: false, range: (u, min, max) => [min - 0.5, max + 0.5] },
              y: { range: (u, min, max) => [0, Math.max(max, 0) * 1.1 || 1] } },
    axes: [{ values: (u, ticks) => ticks.map((t) => spec.labels[t] ?? ""), incrs: [1] }, { label: "share" }],
    series: [{ label: "bin", value: (u, v) => (v == null ? "" : spec.labels[v]) }].concat(names.map((n, i) => ({
      label: n, stroke: PALETTE[i], fill: PALETTE[i] + "55",
      paths: uPlot.paths.bars({ size: [0.4], align: i === 0 ? -1 : 1 }) }))),
  };
  return new uPlot(opts, [spec.x].concat(names.map((n) => spec.series[n])), el);
}

// Drift over time: one line per feature over the windows' start times ({"x": epoch seconds, "series": {...}}).
function drawOverTime(el) {
  const spec = JSON.parse(el.dataset.chart);
  const names = Object.keys(spec.series);
  const opts = {
    width: Math.min(900, el.clientWidth || 900), height: 240,
    scales: { x: { time: true } },
    series: [{ label: "window" }].concat(names.map((n, i) => ({ label: n, stroke: PALETTE[i % PALETTE.length], width: 2,
                                                                  spanGaps: false }))),
  };
  return new uPlot(opts, [spec.x].concat(names.map((n) => spec.series[n])), el);
}
