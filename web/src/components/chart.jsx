// An interactive line chart (uPlot): drag to zoom, double-click to reset, hover shows every value.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

const WHOLE_STEPS = [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000];
// Enough digits to tell ticks apart (learning rates such as 0.00275), no float noise.
const tickLabel = (v) => (v == null ? "" : Math.abs(v) >= 1e4 || (v !== 0 && Math.abs(v) < 1e-4) ? v.toExponential(1) : String(+v.toPrecision(3)));

export const PALETTE = ["#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563"];

// Draws dashed vertical lines at the given x values (e.g. the best epoch), labelled.
function markersPlugin(getMarkers) {
  return {
    hooks: {
      draw: (u) => {
        const { ctx } = u;
        const { top, height } = u.bbox;
        for (const m of getMarkers()) {
          if (m.x == null) continue;
          const x = Math.round(u.valToPos(m.x, "x", true));
          if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
          ctx.save();
          ctx.strokeStyle = m.color || "#16a34a";
          ctx.setLineDash([5, 4]);
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.beginPath();
          ctx.moveTo(x, top);
          ctx.lineTo(x, top + height);
          ctx.stroke();
          ctx.fillStyle = m.color || "#16a34a";
          ctx.textAlign = "left"; // uPlot leaves its axes' alignment on the context
          ctx.textBaseline = "alphabetic";
          ctx.font = `${11 * devicePixelRatio}px system-ui, sans-serif`;
          ctx.fillText(m.label, x + 4 * devicePixelRatio, top + 12 * devicePixelRatio);
          ctx.restore();
        }
      },
    },
  };
}

/**
 * series: [{ label, x: number[], y: number[], color? }] — each with its own x; joined here.
 * markers: [{ x, label, color? }] vertical lines. xLabel / yLabel: axis names. note: a line under the title.
 */
export function LineChart({ title, note, series, xLabel = "epoch", yLabel, markers = [], height = 220, yRange, xRange, wholeX = true, testId, emptyText = "no values yet" }) {
  const box = useRef(null);
  const plot = useRef(null);
  const zoomed = useRef(false);
  const markerRef = useRef(markers);
  markerRef.current = markers;

  const nonEmpty = series.filter((s) => s.x.length > 0);
  const shape = nonEmpty.map((s) => s.label).join("|");
  const data = nonEmpty.length ? uPlot.join(nonEmpty.map((s) => [Float64Array.from(s.x), Float64Array.from(s.y)])) : null;

  useEffect(() => {
    if (!data || !box.current) return undefined;
    const opts = {
      width: Math.max(200, box.current.clientWidth),
      height,
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      scales: { x: xRange ? { time: false, range: xRange } : { time: false }, y: yRange ? { range: yRange } : {} },
      axes: [
        // epochs and steps are whole numbers: no tick at 1.5
        { label: xLabel, stroke: "#475569", grid: { stroke: "#e2e8f0" }, ...(wholeX ? { incrs: WHOLE_STEPS } : { values: (u, ticks) => ticks.map(tickLabel) }) },
        { label: yLabel, stroke: "#475569", grid: { stroke: "#e2e8f0" }, size: 60, values: (u, ticks) => ticks.map(tickLabel) },
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
          value: (u, v) => (v == null ? "—" : Number(v).toPrecision(4)),
        })),
      ],
      hooks: {
        setSelect: [(u) => u.select.width > 0 && (zoomed.current = true)],
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
  }, [shape, height, !!data, wholeX]);

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
