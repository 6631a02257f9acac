// The four live charts of a run: learning rate, batch loss, validation loss, validation accuracy (or mAP).
import { LineChart } from "./chart.jsx";
import { curves, metricLabel } from "./curves.js";

export function TrainingCharts({ events, finished = false }) {
  const c = curves(events);
  const emptyText = finished ? "none: the run ended before recording any" : "no values yet";
  const markers = [
    c.bestEpoch != null && { x: c.bestEpoch, label: `best epoch ${c.bestEpoch}`, color: "#16a34a" },
    c.fineTuneStart != null && { x: c.fineTuneStart, label: "fine-tuning", color: "#7c3aed" },
  ].filter(Boolean);
  return (
    <div class="charts">
      <LineChart testId="chart-learning-rate" emptyText={emptyText} title="Learning rate" xLabel={c.lrAxis} series={[{ label: "learning rate", ...c.learningRate }]} />
      <LineChart testId="chart-batch-loss" emptyText={emptyText} title="Batch loss" xLabel="step" series={[{ label: "batch loss", ...c.batchLoss }]} />
      <LineChart
        testId="chart-validation-loss"
        emptyText={emptyText}
        title="Validation loss"
        series={[
          { label: "validation loss", ...c.valLoss },
          { label: "training loss", ...c.trainLoss, color: "#94a3b8" },
        ]}
        markers={markers}
      />
      <LineChart
        testId="chart-validation-metric"
        emptyText={emptyText}
        title={metricLabel(c.headline).replace(/^./, (s) => s.toUpperCase())}
        series={[{ label: metricLabel(c.headline), ...c.metric, color: "#16a34a" }]}
        markers={markers}
        yRange={[0, 1]}
      />
    </div>
  );
}
