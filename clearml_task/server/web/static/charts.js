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

  // One uPlot chart in a new figure. `axes` (a plot's): the x and y axis titles, the x one also naming the
  // x values in the legend; scalars' x values are iterations or times. Each series is drawn as its `mode`
  // says ("lines", "markers" or "lines+markers"; lines when not given), noted in the figure's data-modes.
  function chart(parent, title, series, weight, axes) {
    const box = document.createElement("figure");
    box.className = "chart";
    box.dataset.metric = title;
    box.dataset.modes = series.map((s) => s.mode || "lines").join(" ");
    parent.append(box);
    const width = Math.max(Math.min(parent.clientWidth - 20, 900), 300);
    const options = {
      title, width, height: 260,
      scales: { x: { time: byTime } },
      series: [{ label: axes ? axes.x : (byTime ? "time" : "iteration") },
        ...series.map((s, i) => seriesOptions(s, palette[i % palette.length]))],
    };
    if (axes) options.axes = [{ label: axes.x }, { label: axes.y || undefined }];
    new uPlot(options, aligned(series, weight), box);
  }

  function seriesOptions(s, color) {
    const mode = s.mode || "lines";
    const options = { label: s.label, stroke: color, width: 1.5, spanGaps: true };
    if (!mode.includes("lines")) options.paths = () => null;
    if (mode.includes("markers")) options.points = { show: true, size: 6, fill: color };
    else if (s.mode) options.points = { show: false };  // a plot's line: no markers unless its mode says
    return options;
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

  // Plots: plotly figures (plot_str). A figure is drawn only when uPlot draws it as plotly would (numeric
  // scatter traces on linear axes, see drawable); any other (a heatmap, a line going back on its x values)
  // is shown as its JSON rather than drawn wrongly.
  const plots = document.getElementById("plots");
  if (plots) afterPaint(() => {
    for (const event of read("plots-data") || []) {
      const raw = typeof event.plot_str === "string" ? event.plot_str : JSON.stringify(event.plot_str);
      let figure;  // undefined: not JSON, shown as the text it is
      try { figure = JSON.parse(raw || "{}"); } catch (error) { figure = undefined; }
      const count = event.iterations > 1 ? `, the newest of ${event.iterations}${event.more ? "+" : ""} iterations` : "";
      const title = `${event.metric} / ${event.variant} (iteration ${event.iter}${count})`;
      const isFigure = figure !== null && typeof figure === "object" && !Array.isArray(figure);
      const series = isFigure ? drawable(figure) : null;  // null, a number, a list: no figure to draw
      if (series) chart(plots, title, series, 0, axisTitles(figure.layout));
      else asJson(plots, title, figure === undefined ? String(raw) : figure);
    }
  });

  function asJson(parent, title, figure) {
    const box = document.createElement("figure");
    box.className = "chart";
    box.dataset.metric = title;
    const caption = document.createElement("figcaption");
    caption.textContent = title;
    const pre = document.createElement("pre");
    pre.textContent = typeof figure === "string" ? figure : JSON.stringify(figure, null, 2);
    box.append(caption, pre);
    parent.append(box);
  }

  const isNumber = (v) => typeof v === "number" && Number.isFinite(v);

  // The figure's traces as series uPlot draws faithfully, or null. uPlot draws y over x values shared by
  // all series and sorted ascending, so: only scatter traces of numbers on linear axes; a line's x values
  // must strictly increase (or decrease: the same line), markers' x values must be distinct (their order
  // does not matter); no other trace type (heatmap, bar, histogram, pie, 3D ...).
  function drawable(figure) {
    const traces = Array.isArray(figure.data) ? figure.data : [];
    const layout = figure.layout || {};
    if (!traces.length || !linear(layout.xaxis) || !linear(layout.yaxis)) return null;
    const series = [];
    for (const [i, trace] of traces.entries()) {
      const s = scatterSeries(trace, i);
      if (!s) return null;
      if (s.x.length) series.push(s);
    }
    return series.length ? series : null;
  }

  function linear(axis) {
    if (axis && axis.autorange === "reversed") return false;  // uPlot would draw it the other way up
    return !axis || axis.type === undefined || axis.type === "-" || axis.type === "linear";
  }

  function scatterSeries(trace, i) {
    if (!trace || typeof trace !== "object" || !["scatter", "scattergl", undefined].includes(trace.type)) return null;
    if (trace.xaxis && trace.xaxis !== "x" || trace.yaxis && trace.yaxis !== "y") return null;
    const y = trace.y;
    const x = trace.x === undefined && Array.isArray(y) ? y.map((_, k) => k) : trace.x;
    if (!Array.isArray(x) || !Array.isArray(y) || x.length !== y.length) return null;
    if (!x.every(isNumber) || !y.every(isNumber)) return null;  // a null is a gap plotly leaves, uPlot spans
    const mode = traceMode(trace, x.length);
    if (!mode) return null;
    let pairs = x.map((v, k) => [v, y[k]]);
    if (!mode.includes("lines")) pairs.sort((a, b) => a[0] - b[0]);
    else if (pairs.length > 1 && pairs[0][0] > pairs[1][0]) pairs.reverse();
    if (!pairs.every((p, k) => k === 0 || p[0] > pairs[k - 1][0])) return null;
    return { label: trace.name || `series ${i + 1}`, x: pairs.map((p) => p[0]), y: pairs.map((p) => p[1]), mode };
  }

  // A scatter trace's mode as plotly reads it: given, or lines (with markers when it has under 20 points);
  // "" for a mode that draws neither (text, none).
  function traceMode(trace, points) {
    const given = typeof trace.mode === "string" ? trace.mode : "";
    const lines = given ? given.includes("lines") : true;
    const markers = given ? given.includes("markers") : points < 20;
    return [lines ? "lines" : "", markers ? "markers" : ""].filter(Boolean).join("+");
  }

  // A layout axis's title: plotly takes {text} or, in older figures, a string.
  function axisTitles(layout) {
    const title = (axis) => {
      const t = axis && axis.title;
      return typeof t === "string" ? t : (t && typeof t.text === "string" ? t.text : "");
    };
    return { x: title(layout && layout.xaxis) || "x", y: title(layout && layout.yaxis) };
  }
})();
