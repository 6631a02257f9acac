// An interactive line chart (uPlot): drag to zoom, double-click to reset, hover shows every value.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { fittedRange } from "./curves.js";

const WHOLE_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
// Enough digits to tell ticks apart (learning rates such as 0.00275), no float noise.
const tickLabel = (v) => (v == null ? "" : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-4) ? v.toExponential(1) : String(+v.toPrecision(3)));
// Shares (accuracy, mAP) read as the tables write them: 96.7%, not 0.967.
const percentLabel = (v) => (v == null ? "" : `${+(v * 100).toFixed(Math.abs(v) < 0.1 ? 2 : 1)}%`);
// Marker labels sit in a band above the plot, one row each, so they never cover a curve.
const MARKER_ROW_PX = 14;

export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

// A dashed vertical line across the plot area at canvas position ``x`` (the caller saves and restores the context).
export function dashedLine(u, x, color) {
  const { ctx } = u;
  const { top, height } = u.bbox;
  ctx.strokeStyle = color;
  ctx.setLineDash([5, 4]);
  ctx.lineWidth = 1.5 * devicePixelRatio;
  ctx.beginPath();
  ctx.moveTo(x, top);
  ctx.lineTo(x, top + height);
  ctx.stroke();
}

// Draws dashed vertical lines at the given x values (e.g. the best epoch), labelled above the plot area
// (each label on its own row, right-aligned where it would run past the plot's right edge).
function markersPlugin(getMarkers) {
  return {
    hooks: {
      draw: (u) => {
        const { ctx } = u;
        const { top } = u.bbox;
        const shown = getMarkers().filter((m) => m.x != null);
        shown.forEach((m, row) => {
          const x = Math.round(u.valToPos(m.x, "x", true));
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) return;
          ctx.save();
          dashedLine(u, x, m.color || "#16a34a");
          ctx.fillStyle = m.color || "#16a34a";
          ctx.textBaseline = "alphabetic"; // uPlot leaves its axes' alignment on the context
          ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
          const width = ctx.measureText(m.label).width;
          const right = x + 4 * devicePixelRatio + width > u.bbox.left + u.bbox.width;
          ctx.textAlign = right ? "right" : "left";
          const y = top - (4 + (shown.length - 1 - row) * MARKER_ROW_PX) * devicePixelRatio;
          ctx.fillText(m.label, right ? x - 4 * devicePixelRatio : x + 4 * devicePixelRatio, y);
          ctx.restore();
        });
      },
    },
  };
}

/**
 * series: [{ label, x: number[], y: number[], color? }] — each with its own x; joined here.
 * markers: [{ x, label, color? }] vertical lines. xLabel / yLabel: axis names. note: a line under the title.
 * yRange: a fixed y range; yFit: bounds [low, high] within which the y axis fits the values (with a margin).
 * percent: the values are shares, shown as % on the axis and in the tooltip.
 */
export function LineChart({ title, note, series, xLabel = "epoch", yLabel, markers = [], height = 220, yRange, yFit, percent = false, xRange, wholeX = true, testId, emptyText = "no values yet" }) {
  const box = useRef(null);
  const plot = useRef(null);
  const zoomed = useRef(false);
  const markerRef = useRef(markers);
  markerRef.current = markers;
  const markerRows = markers.filter((m) => m.x != null).length;

  const nonEmpty = series.filter((s) => s.x.length > 0);
  const shape = nonEmpty.map((s) => s.label).join("|");
  const data = nonEmpty.length ? uPlot.join(nonEmpty.map((s) => [Float64Array.from(s.x), Float64Array.from(s.y)])) : null;

  useEffect(() => {
    if (!data || !box.current) return undefined;
    const yScale = yRange ? { range: yRange } : yFit ? { range: (u, low, high) => fittedRange(low, high, yFit) } : {};
    const opts = {
      width: Math.max(200, box.current.clientWidth),
      height,
      padding: [8 + markerRows * MARKER_ROW_PX, 12, 0, 0],
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      scales: { x: xRange ? { time: false, range: xRange } : { time: false }, y: yScale },
      axes: [
        // epochs and steps are whole numbers: no tick at 1.5
        { label: xLabel, stroke: "#475569", grid: { stroke: "#e2e8f0" }, ...(wholeX ? { incrs: WHOLE_STEPS } : { values: (u, ticks) => ticks.map(tickLabel) }) },
        { label: yLabel, stroke: "#475569", grid: { stroke: "#e2e8f0" }, size: 60, values: (u, ticks) => ticks.map(percent ? percentLabel : tickLabel) },
      ],
      legend: { live: true },
      series: [
        { label: xLabel, value: (u, v) => (v == null ? "—" : +v.toFixed(3)) },
        ...nonEmpty.map((s, i) => ({
          label: s.label,
          stroke: s.color || PALETTE[i % PALETTE.length],
          width: 2,
          spanGaps: true,
          points: { show: s.x.length < 60 },
          value: (u, v) => (v == null ? "—" : percent ? `${(v * 100).toFixed(1)}%` : Number(v).toPrecision(4)),
        })),
      ],
      hooks: {
        setSelect: [(u) => u.select.width > 0 && (zoomed.current = true)],
        // The y range drawn, on the element (for tests and for anyone inspecting the page).
        setScale: [(u, key) => key === "y" && box.current && Object.assign(box.current.dataset, { yMin: u.scales.y.min, yMax: u.scales.y.max })],
      },
      plugins: [markersPlugin(() => markerRef.current)],
    };
    const u = new uPlot(opts, data, box.current);
    plot.current = u;
    const onDouble = () => (zoomed.current = false);
    u.over.addEventListener("dblclick", onDouble);
    const resize = new ResizeObserver(() => u.setSize({ width: Math.max(200, box.current.clientWidth), height }));
    resize.observe(box.current);
    return () => {
      resize.disconnect();
      u.destroy();
      plot.current = null;
    };
  }, [shape, height, !!data, wholeX, markerRows, percent]);

  useEffect(() => {
    if (plot.current && data) plot.current.setData(data, !zoomed.current);
  });

  return (
    <figure class="chart" data-testid={testId}>
      <figcaption>
        <span>{title}</span>
        {data && <small class="hint">drag to zoom · double-click to reset</small>}
      </figcaption>
      {note && <p class="help chart-note">{note}</p>}
      {data ? <div ref={box} class="chart-box" /> : <div class="chart-empty">{emptyText}</div>}
    </figure>
  );
}
