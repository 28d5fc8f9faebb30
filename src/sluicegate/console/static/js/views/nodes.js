// Nodes and health: the gateway nodes sharing this log (one on embedded storage), this
// node's readiness (/readyz), and charts of the last minutes from the metrics history:
// produce rate, p99 latencies, storage gauges. Refreshed every 5 s, as the history is
// sampled.

import uPlot from "../../vendor/uplot-1.6.32/uPlot.esm.js";
import { api, ApiError } from "../api.js";
import { errorBox, formatNumber, h, replace } from "../dom.js";
import { every, formatSeconds } from "./durations.js";
import { useOpsStyle } from "./ops-style.js";

const REFRESH_MS = 5000;
const HEIGHT = 200;
// Distinguishable for the common colour blindnesses (Okabe–Ito), dashed in turn.
const COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9"];

function nodesTable(nodes) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { "aria-label": "Nodes" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          h("th", { scope: "col" }, "Node"),
          h("th", { scope: "col", class: "hide-narrow" }, "URL"),
          h("th", { scope: "col" }, "Live"),
          h("th", { scope: "col", class: "num" }, "Last heartbeat"),
          h("th", { scope: "col", class: "num" }, "Consumer instances"),
          h("th", { scope: "col", class: "num" }, "Streams"),
          h("th", { scope: "col", class: "hide-narrow" }, "Started"),
        ),
      ),
      h(
        "tbody",
        {},
        nodes.map((n) =>
          h(
            "tr",
            {},
            h("td", {}, n.node_id, n.this_node ? h("span", { class: "badge" }, "this node") : null),
            h("td", { class: "hide-narrow" }, n.url),
            h("td", { class: n.live ? "live-yes" : "live-no" }, n.live ? "live" : "not live"),
            h("td", { class: "num" }, n.this_node ? "now" : `${formatSeconds(n.heartbeat_age)} ago`),
            h("td", { class: "num" }, formatNumber(n.instances)),
            h("td", { class: "num" }, formatNumber(n.streams)),
            h("td", { class: "hide-narrow" }, n.started_at),
          ),
        ),
      ),
    ),
  );
}

// The charts, each over one or more series of the history.
const CHARTS = [
  { id: "rate", title: "Produce rate", unit: "records/s", series: [["produce_rate", "records/s", 1]] },
  {
    id: "latency",
    title: "p99 latency",
    unit: "ms",
    series: [
      ["produce_p99", "produce requests", 1000],
      ["commit_p99", "storage commits", 1000],
    ],
  },
  { id: "storage", title: "Storage gauges", unit: "", series: null },
];

function seriesOf(chart, history) {
  if (chart.series) return chart.series;
  return Object.keys(history.series)
    .filter((name) => name.startsWith("storage_"))
    .map((name) => [name, name.slice("storage_".length).replaceAll("_", " "), 1]);
}

function columns(chart, history) {
  const data = [history.times];
  for (const [name, , scale] of seriesOf(chart, history)) {
    data.push((history.series[name] ?? []).map((v) => (v === null ? null : v * scale)));
  }
  return data;
}

// The chart in words, for whoever does not see the canvas: the last value and the
// highest of the window, per series.
function latest(chart, history) {
  const unit = chart.unit ? ` ${chart.unit}` : "";
  const shown = (value, scale) => (value === null ? "none" : `${Number((value * scale).toFixed(2)).toLocaleString("en")}${unit}`);
  const parts = [];
  for (const [name, label, scale] of seriesOf(chart, history)) {
    const values = history.series[name] ?? [];
    const last = values.length ? values[values.length - 1] : null;
    const present = values.filter((v) => v !== null);
    const highest = present.length ? Math.max(...present) : null;
    parts.push(`${label}: ${shown(last, scale)} (highest ${shown(highest, scale)})`);
  }
  return `Last ${history.interval} s — ${parts.join("; ")}`;
}

function makePlot(chart, history, width, into) {
  const series = seriesOf(chart, history);
  return new uPlot(
    {
      width,
      height: HEIGHT,
      // The whole window, ending at the last sample: a young node's few points sit at
      // the right, on the same time axis they will keep.
      scales: { x: { time: true, range: (plot, min, max) => [max - history.window, max] } },
      axes: [{}, { label: chart.unit, size: 60 }],
      legend: { live: false },
      series: [
        {},
        ...series.map(([, label], index) => ({
          label,
          stroke: COLOURS[index % COLOURS.length],
          width: 2,
          dash: index % 2 ? [6, 4] : undefined,
          spanGaps: false,
        })),
      ],
    },
    columns(chart, history),
    into,
  );
}

export default async function nodes(main, params, context) {
  useOpsStyle();
  const error = errorBox();
  const nodesBox = h("div");
  const ready = h("p", { class: "ready", id: "readiness" }, "…");
  const chartBox = h("div", { class: "charts" });
  const sampling = h("p", { class: "muted" });
  main.append(
    h(
      "section",
      { "aria-labelledby": "nodes-title" },
      h("h1", { id: "nodes-title" }, "Nodes and health"),
      error,
      h("h2", {}, "Readiness"),
      ready,
      h("h2", {}, "Nodes"),
      nodesBox,
      h("h2", {}, "The last minutes"),
      sampling,
      chartBox,
    ),
  );

  const plots = new Map();
  let shape = "";

  function draw(history) {
    const points = history.times.length;
    replace(
      sampling,
      points < 2
        ? `Collecting samples: one every ${history.interval} s, the last ${history.window / 60} minutes kept by this node (${points} so far).`
        : `${points} samples, one every ${history.interval} s, kept by this node for ${history.window / 60} minutes.`,
    );
    // The storage gauges' names come from the server: a new set means new charts.
    const now = Object.keys(history.series).join(",");
    if (now !== shape) {
      for (const { plot, watcher } of plots.values()) {
        watcher.disconnect();
        plot.destroy();
      }
      plots.clear();
      replace(chartBox);
      shape = now;
    }
    for (const chart of CHARTS) {
      let entry = plots.get(chart.id);
      if (!entry) {
        const summary = h("p", { class: "muted", id: `chart-${chart.id}-summary` });
        const canvas = h("div", { class: "plot", role: "img", "aria-describedby": `chart-${chart.id}-summary`, "aria-label": `${chart.title} chart` });
        const figure = h("figure", { id: `chart-${chart.id}` }, h("figcaption", {}, chart.title), canvas, summary);
        chartBox.append(figure);
        // As wide as its grid cell, which the screen decides; followed when it changes.
        const plot = makePlot(chart, history, Math.max(200, canvas.clientWidth), canvas);
        const watcher = new ResizeObserver(([seen]) => {
          const width = Math.max(200, Math.floor(seen.contentRect.width));
          if (width !== plot.width) plot.setSize({ width, height: HEIGHT });
        });
        watcher.observe(canvas);
        entry = { plot, summary, watcher };
        plots.set(chart.id, entry);
      } else {
        entry.plot.setData(columns(chart, history));
      }
      replace(entry.summary, latest(chart, history));
    }
  }

  async function loadReadiness() {
    try {
      const answer = await api("/readyz");
      ready.className = "ready ok";
      replace(ready, `Ready: ${answer.status}`);
    } catch (failure) {
      if (!(failure instanceof ApiError)) throw failure;
      ready.className = "ready down";
      replace(ready, `Not ready: ${failure}`);
    }
  }

  async function refresh() {
    try {
      const [found, history] = await Promise.all([api("/admin/v1/nodes"), api("/admin/v1/metrics/history"), loadReadiness()]);
      replace(nodesBox, nodesTable(found));
      draw(history);
      replace(error);
    } catch (failure) {
      replace(error, String(failure));
    }
  }

  await refresh();
  const stop = every(REFRESH_MS, refresh);
  return () => {
    stop();
    for (const { plot, watcher } of plots.values()) {
      watcher.disconnect();
      plot.destroy();
    }
  };
}
