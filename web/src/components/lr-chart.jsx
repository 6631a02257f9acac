// The learning-rate range test's curve (uPlot, as the other charts): training loss against a rate on a
// log scale, the smoothed loss the rule reads, and the suggested rate marked.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { PALETTE, dashedLine } from "./chart.jsx";

export const rateText = (rate) => String(+Number(rate).toPrecision(2));
const MARK = "#d97706";
const powersOfTen = (u, splits) => splits.map((v) => (v != null && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9 ? v : null));

function suggestedMark(rate) {
  return {
    hooks: {
      draw: (u) => {
        const x = Math.round(u.valToPos(rate, "x", true));
        const { ctx } = u;
        const { top } = u.bbox;
        ctx.save();
        dashedLine(u, x, MARK);
        ctx.fillStyle = MARK;
        ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
        ctx.textBaseline = "alphabetic";
        const label = `suggested ${rateText(rate)}`;
        // The label on the side of the line with room for it.
        const right = x + ctx.measureText(label).width + 8 * devicePixelRatio < u.bbox.left + u.bbox.width;
        ctx.textAlign = right ? "left" : "right";
        ctx.fillText(label, x + (right ? 4 : -4) * devicePixelRatio, top + 12 * devicePixelRatio);
        ctx.restore();
      },
    },
  };
}

/** result: the lr-find answer ({rates, losses, smoothed, suggestion}). */
export function RateChart({ result, height = 200 }) {
  const box = useRef(null);
  useEffect(() => {
    if (!box.current) return undefined;
    const { rates, losses, smoothed, suggestion } = result;
    // The first half of the smoothed curve bounds the view: the blow-up at the end would flatten the rest.
    const head = smoothed.slice(0, Math.max(1, Math.ceil(smoothed.length / 2)));
    const low = Math.min(...smoothed);
    const high = Math.max(...head, low * 1.5);
    const opts = {
      width: Math.max(240, box.current.clientWidth),
      height,
      cursor: { points: { size: 5 } },
      scales: { x: { time: false, distr: 3, log: 10 }, y: { range: [low * 0.9, high * 1.15] } },
      axes: [
        {
          label: "learning rate (log scale)",
          stroke: "#475569",
          // Only powers of ten: a log scale's 2..9 lines would fill the plot.
          grid: { stroke: "#e2e8f0", filter: powersOfTen },
          ticks: { show: false },
          filter: powersOfTen,
          values: (u, ticks) => ticks.map((v) => (v == null ? "" : v.toExponential(0))),
        },
        { label: "training loss", stroke: "#475569", grid: { stroke: "#e2e8f0" }, size: 56, values: (u, ticks) => ticks.map((v) => (v == null ? "" : +v.toPrecision(3))) },
      ],
      legend: { live: true },
      series: [
        { label: "rate", value: (u, v) => (v == null ? "—" : Number(v).toExponential(2)) },
        { label: "loss per step", stroke: "#cbd5e1", width: 1, points: { show: false }, value: (u, v) => (v == null ? "—" : Number(v).toPrecision(4)) },
        { label: "smoothed", stroke: PALETTE[0], width: 2, points: { show: false }, value: (u, v) => (v == null ? "—" : Number(v).toPrecision(4)) },
      ],
      plugins: [suggestedMark(suggestion)],
    };
    const u = new uPlot(opts, [rates, losses, smoothed], box.current);
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(240, box.current.clientWidth), height }));
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      u.destroy();
    };
  }, [result, height]);
  return (
    <figure class="chart lr-chart" data-testid="lr-chart">
      <figcaption>
        <span>Loss as the rate rises</span>
      </figcaption>
      <div ref={box} class="chart-box" />
    </figure>
  );
}
