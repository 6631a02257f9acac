// Engine events (training/events.py) -> chart series. Epochs run on across stages: fine-tuning
// epochs follow the head's, so one x axis shows the whole run.

export const HEADLINE_KEYS = ["val_accuracy", "val_map50", "val_map"];

// The metric the run chooses its best checkpoint by: the epoch events name it (`monitor`: val_accuracy
// for classification, val_map for tagging); older runs did not, so the first known metric they report.
export function headlineKey(events) {
  const named = events.find((e) => e.type === "epoch" && e.monitor);
  if (named) return named.monitor;
  for (const key of HEADLINE_KEYS) if (events.some((e) => e.type === "epoch" && e[key] != null)) return key;
  return "val_accuracy";
}

// `task`: detection's val_map is COCO's mAP averaged over overlaps 0.5 to 0.95, not tagging's mAP.
export const metricLabel = (key, task) =>
  (key === "val_map" && task === "detection"
    ? "validation mAP@[.5:.95]"
    : {
        val_accuracy: "validation accuracy",
        val_map: "validation mAP",
        val_map50: "validation mAP@0.5",
        val_map75: "validation mAP@0.75",
        val_loss: "validation loss",
        val_exact_match: "validation exact match",
      }[key]) || key.replace(/_/g, " ");

// The parts of a detector's loss (training/detection.py LOSS_NAMES), in plain words: epoch events carry
// each as train_<part> and val_<part>.
export const LOSS_PARTS = [
  ["loss_classifier", "which concept each box is"],
  ["loss_box_reg", "where each box lies"],
  ["loss_objectness", "object or background (proposals)"],
  ["loss_rpn_box_reg", "where proposals lie"],
];

// A run is a detector's when its epochs report mAP@0.5 (or name it as their monitor).
export const isDetectionRun = (events) => headlineKey(events) === "val_map50";

export function curves(events) {
  const epochs = events.filter((e) => e.type === "epoch");
  const batches = events.filter((e) => e.type === "batch");
  const headEpochs = Math.max(0, ...epochs.filter((e) => e.stage === "head").map((e) => e.epoch));
  const globalEpoch = (e) => (e.stage === "fine_tune" ? headEpochs + e.epoch : e.epoch);
  const key = headlineKey(events);
  const pick = (list, xOf, field) => {
    const rows = list.filter((e) => e[field] != null && Number.isFinite(e[field]));
    return { x: rows.map(xOf), y: rows.map((e) => e[field]) };
  };
  const best = [...epochs].reverse().find((e) => e.best);
  return {
    headline: key,
    learningRate: pick(batches.length ? batches : epochs, batches.length ? (e) => e.step : globalEpoch, "learning_rate"),
    lrAxis: batches.length ? "step" : "epoch",
    batchLoss: pick(batches, (e) => e.step, "loss"),
    trainLoss: pick(epochs, globalEpoch, "train_loss"),
    valLoss: pick(epochs, globalEpoch, "val_loss"),
    metric: pick(epochs, globalEpoch, key),
    maps: { map50: pick(epochs, globalEpoch, "val_map50"), map: pick(epochs, globalEpoch, "val_map"), map75: pick(epochs, globalEpoch, "val_map75") },
    lossParts: {
      train: LOSS_PARTS.map(([part, label]) => ({ part, label, ...pick(epochs, globalEpoch, `train_${part}`) })).filter((s) => s.x.length),
      val: LOSS_PARTS.map(([part, label]) => ({ part, label, ...pick(epochs, globalEpoch, `val_${part}`) })).filter((s) => s.x.length),
    },
    bestEpoch: best ? globalEpoch(best) : null,
    bestValue: best ? best[key] : null,
    fineTuneStart: epochs.some((e) => e.stage === "fine_tune") ? headEpochs + 0.5 : null,
    epochsDone: epochs.length ? globalEpoch(epochs[epochs.length - 1]) : 0,
  };
}

// The stage the run is in now, and feature-extraction progress, from the latest events.
export function progressOf(events) {
  let stage = null;
  let features = null;
  for (const e of events) {
    if (e.type === "stage" && e.status === "started") stage = e.stage;
    if (e.type === "features") features = e;
  }
  return { stage, features };
}
