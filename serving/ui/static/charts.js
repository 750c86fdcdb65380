// Line charts drawn with uPlot (vendored: uplot.iife.min.js, see UPLOT_LICENSE) from a data-chart attribute:
// {"x": [...], "series": {"label": [...], ...}}.
const PALETTE = ["#0969da", "#1a7f37", "#bf8700", "#8250df", "#cf222e", "#57606a"];

function drawLines(el) {
  const spec = JSON.parse(el.dataset.chart);
  const labels = Object.keys(spec.series);
  const opts = {
    width: Math.min(900, el.clientWidth || 900), height: 320,
    scales: { x: { time: false } },
    axes: [{ label: "registry version" }, { label: "objects" }],
    series: [{ label: "version" }].concat(labels.map((l, i) => ({ label: l, stroke: PALETTE[i % PALETTE.length], width: 2 }))),
  };
  return new uPlot(opts, [spec.x].concat(labels.map((l) => spec.series[l])), el);
}
