// Engine events (training/events.py) -> chart series. Epochs run on across stages: fine-tuning
// epochs follow the head's, so one x axis shows the whole run.

export const HEADLINE_KEYS = ["val_accuracy", "val_map", "val_map50"];

// The metric the run chooses its best checkpoint by: the epoch events name it (`monitor`: val_accuracy
// for classification, val_map for tagging); older runs did not, so the first known metric they report.
export function headlineKey(events) {
  const named = events.find((e) => e.type === "epoch" && e.monitor);
  if (named) return named.monitor;
  for (const key of HEADLINE_KEYS) if (events.some((e) => e.type === "epoch" && e[key] != null)) return key;
  return "val_accuracy";
}

export const metricLabel = (key) =>
  ({
    val_accuracy: "validation accuracy",
    val_map: "validation mAP",
    val_map50: "validation mAP@50",
    val_loss: "validation loss",
    val_exact_match: "validation exact match",
  })[key] ||
  key.replace(/_/g, " ");

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
