// The records-a-second chart (uPlot), with a text summary for screen readers.

import uPlot from "../vendor/uplot-1.6.32/uPlot.esm.js";
import { h, replace } from "./dom.js";

export function rateChart(container) {
  let plot = null;
  const summary = h("p", { class: "muted" });
  const area = h("div", { class: "rate-chart", role: "img", "aria-label": "Records a second, by minute" });
  replace(container, area, summary);
  const observer = new ResizeObserver(() => {
    if (plot) plot.setSize({ width: Math.max(240, area.clientWidth), height: 160 });
  });
  observer.observe(area);

  return {
    update(points) {
      const times = points.map((point) => Date.parse(point.start) / 1000);
      const rates = points.map((point) => Math.round(point.per_second * 100) / 100);
      const latest = rates.length ? rates[rates.length - 1] : 0;
      const peak = rates.length ? Math.max(...rates) : 0;
      replace(summary, `Last ${points.length} minutes: ${latest} records/s now, peak ${peak} records/s.`);
      if (!plot) {
        plot = new uPlot(
          {
            width: Math.max(240, area.clientWidth),
            height: 160,
            scales: { x: { time: true } },
            axes: [{}, { label: "records/s", size: 60 }],
            legend: { show: false },
            series: [{}, { label: "records/s", stroke: "#0b57a4", fill: "rgba(11, 87, 164, 0.15)", width: 2 }],
          },
          [times, rates],
          area,
        );
      } else {
        plot.setData([times, rates]);
      }
    },
    destroy() {
      observer.disconnect();
      plot?.destroy();
    },
  };
}
