// The live charts of a run: learning rate, batch loss, validation loss, validation accuracy (or mAP).
// A detector's run: mAP@0.5 and mAP@[.5:.95] per epoch, the total loss, and the loss's parts on the
// training and the validation images.
import { LineChart, PALETTE } from "./chart.jsx";
import { curves, isDetectionRun, metricLabel, preparingText, progressOf } from "./curves.js";

const capital = (s) => s.replace(/^./, (c) => c.toUpperCase());

function DetectionCharts({ c, emptyText, markers }) {
  const parts = (list) => list.map((s, i) => ({ label: s.label, x: s.x, y: s.y, color: PALETTE[i % PALETTE.length] }));
  return (
    <div class="charts">
      <LineChart
        testId="chart-validation-metric"
        emptyText={emptyText}
        title="Validation mAP: how well the boxes find the objects"
        note="mAP@0.5: a predicted box counts when it overlaps a true box of its concept by at least half (IoU ≥ 0.5); mAP@[.5:.95]: the same averaged over stricter overlaps, up to 95% (boxes must also be tight). Higher is better; the best epoch is kept."
        series={[
          { label: "mAP@0.5", ...c.maps.map50, color: "#16a34a" },
          { label: "mAP@[.5:.95]", ...c.maps.map, color: "#2563eb" },
        ]}
        markers={markers}
        yFit={[0, 1]}
        percent
      />
      <LineChart
        testId="chart-validation-loss"
        emptyText={emptyText}
        title="Loss: training and validation"
        note="The sum of the four parts below. Validation loss rising while training loss falls: the detector starts to learn the training images by heart."
        series={[
          { label: "validation loss", ...c.valLoss },
          { label: "training loss", ...c.trainLoss, color: "#94a3b8" },
        ]}
        markers={markers}
      />
      <LineChart
        testId="chart-train-loss-parts"
        emptyText={emptyText}
        title="Loss parts on the training images"
        note="What the detector still gets wrong while it learns: the concept of each box, where each box lies, and, in the first stage that proposes regions, object or background and where proposals lie."
        series={parts(c.lossParts.train)}
        markers={markers}
      />
      <LineChart
        testId="chart-val-loss-parts"
        emptyText={emptyText}
        title="Loss parts on the validation images"
        note="The same parts on images the detector never trains on."
        series={parts(c.lossParts.val)}
        markers={markers}
      />
      <LineChart testId="chart-batch-loss" emptyText={emptyText} title="Batch loss" xLabel="step" series={[{ label: "batch loss", ...c.batchLoss }]} />
      <LineChart testId="chart-learning-rate" emptyText={emptyText} title="Learning rate" xLabel={c.lrAxis} series={[{ label: "learning rate", ...c.learningRate }]} />
    </div>
  );
}

// What a chart with nothing to draw yet says: what the run is doing meanwhile (preparing images can take minutes).
function waitingText(events) {
  const { stage, features } = progressOf(events);
  if (stage === "features") return `No values yet: ${preparingText(features).replace(/^P/, "p")}. The charts start with the first training batch.`;
  if (stage === "data") return "No values yet: reading and checking the images.";
  return stage ? "No values yet: training has started." : "No values yet: the run has not started.";
}

export function TrainingCharts({ events, finished = false }) {
  const c = curves(events);
  const emptyText = finished ? "none: the run ended before recording any" : waitingText(events);
  const markers = [
    c.bestEpoch != null && { x: c.bestEpoch, label: `best epoch ${c.bestEpoch}`, color: "#16a34a" },
    c.fineTuneStart != null && { x: c.fineTuneStart, label: "fine-tuning", color: "#7c3aed" },
  ].filter(Boolean);
  if (isDetectionRun(events)) return <DetectionCharts c={c} emptyText={emptyText} markers={markers} />;
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
        title={capital(metricLabel(c.headline))}
        series={[{ label: metricLabel(c.headline), ...c.metric, color: "#16a34a" }]}
        markers={markers}
        yFit={[0, 1]}
        percent
      />
    </div>
  );
}
