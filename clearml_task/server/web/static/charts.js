// Charts with uPlot: one per scalar metric (series per variant, or per task when comparing), and plots.
"use strict";
(function () {
  const palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const charts = document.getElementById("charts");
  const smoothing = document.getElementById("smoothing");
  const xAxis = document.getElementById("x-axis");
  let current = {};
  let byTime = false;

  function read(id) {
    const node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  // {metric: {variant: {x, y}}} -> {metric: [{label, x, y}]}
  function fromHistogram(histogram) {
    const out = {};
    for (const metric of Object.keys(histogram).sort()) {
      out[metric] = Object.keys(histogram[metric]).sort().map((variant) => ({
        label: variant, x: histogram[metric][variant].x, y: histogram[metric][variant].y,
      }));
    }
    return out;
  }

  function smooth(values, weight) {
    if (!weight) return values;
    let previous = null;
    return values.map((v) => {
      if (v === null || v === undefined) return v;
      previous = previous === null ? v : previous * weight + v * (1 - weight);
      return previous;
    });
  }

  // Several series with their own x values -> uPlot's aligned columns (gaps as null).
  function aligned(series, weight) {
    const xs = [...new Set(series.flatMap((s) => s.x.map((x) => (byTime ? x / 1000 : x))))].sort((a, b) => a - b);
    const index = new Map(xs.map((x, i) => [x, i]));
    const columns = series.map((s) => {
      const column = new Array(xs.length).fill(null);
      const ys = smooth(s.y, weight);
      s.x.forEach((x, i) => { column[index.get(byTime ? x / 1000 : x)] = ys[i]; });
      return column;
    });
    return [xs, ...columns];
  }

  function chart(parent, title, series, weight) {
    const box = document.createElement("figure");
    box.className = "chart";
    box.dataset.metric = title;
    parent.append(box);
    const width = Math.max(Math.min(parent.clientWidth - 20, 900), 300);
    new uPlot({
      title, width, height: 260,
      scales: { x: { time: byTime } },
      series: [{ label: byTime ? "time" : "iteration" }, ...series.map((s, i) => ({
        label: s.label, stroke: palette[i % palette.length], width: 1.5, spanGaps: true,
      }))],
    }, aligned(series, weight), box);
  }

  function draw() {
    if (!charts) return;
    charts.replaceChildren();
    const weight = smoothing ? Number(smoothing.value) : 0;
    for (const metric of Object.keys(current)) chart(charts, metric, current[metric], weight);
  }

  // The page paints first; the charts are built in the task after that frame.
  function afterPaint(build) {
    requestAnimationFrame(() => setTimeout(build, 0));
  }

  // Compare has its series in the page; a task's scalars tab reads them through the API.
  if (charts) {
    afterPaint(async () => {
      const compared = read("compare-data");
      const none = document.getElementById("no-scalars");
      try {
        current = compared || fromHistogram(await window.clearmlApi("events.scalar_metrics_iter_histogram", { task: charts.dataset.task }));
      } catch (error) {
        if (none) none.textContent = "scalars: " + error.message;
      }
      draw();
      if (none) none.hidden = Object.keys(current).length > 0;
    });
  }
  if (smoothing) {
    smoothing.addEventListener("input", () => {
      document.getElementById("smoothing-value").textContent = smoothing.value;
      draw();
    });
  }
  if (xAxis) {
    xAxis.addEventListener("change", async () => {
      byTime = xAxis.value === "timestamp";
      const histogram = await window.clearmlApi("events.scalar_metrics_iter_histogram", { task: charts.dataset.task, key: xAxis.value });
      current = fromHistogram(histogram);
      draw();
    });
  }

  // Plots: plotly figures (plot_str); their numeric x/y traces are drawn, anything else is shown as JSON.
  const plots = document.getElementById("plots");
  if (plots) afterPaint(() => {
    for (const event of read("plots-data") || []) {
      let figure = {};
      try { figure = JSON.parse(event.plot_str || "{}"); } catch (error) { figure = {}; }
      const title = `${event.metric} / ${event.variant} (iteration ${event.iter})`;
      const traces = (figure.data || []).filter((t) => Array.isArray(t.x) && Array.isArray(t.y) && t.x.every((v) => typeof v === "number"));
      if (traces.length) {
        chart(plots, title, traces.map((t, i) => ({ label: t.name || `series ${i + 1}`, x: t.x, y: t.y })), 0);
      } else {
        const box = document.createElement("figure");
        box.className = "chart";
        const caption = document.createElement("figcaption");
        caption.textContent = title;
        const pre = document.createElement("pre");
        pre.textContent = JSON.stringify(figure, null, 2);
        box.append(caption, pre);
        plots.append(box);
      }
    }
  });
})();
