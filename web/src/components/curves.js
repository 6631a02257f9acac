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
  // Each stage marks its own best epoch; fine-tuning's is the run's only when it beats the head's (as the
  // runner keeps it), so a tie leaves the head's checkpoint, and its epoch, as the best.
  const stageBest = (stage) => [...epochs].reverse().find((e) => e.best && e.stage === stage);
  const headBest = stageBest("head");
  const tunedBest = stageBest("fine_tune");
  const best = tunedBest && (!headBest || tunedBest[key] > headBest[key]) ? tunedBest : headBest || tunedBest;
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

const count = (n) => Number(n).toLocaleString("en-US");

// "about 2 min left" / "about 40 s left" from the engine's estimate (null before the first computed batch).
export function timeLeft(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return "";
  if (seconds < 1) return "almost done";
  if (seconds < 60) return `about ${Math.max(5, Math.round(seconds / 5) * 5)} s left`;
  return `about ${Math.round(seconds / 60)} min left`;
}

// What feature extraction is doing, from its latest event (training/events.py): "Preparing images: 96 of
// 1,539 (877 originals + 662 augmented copies), about 2 min left". Older and detection runs' events carry
// only done and total.
export function preparingText(features) {
  if (!features) return "Preparing images";
  const parts = [`Preparing images: ${count(features.done)} of ${count(features.total)}`];
  if (features.originals != null) {
    const copies = features.augmented_copies ? ` + ${count(features.augmented_copies)} augmented copies` : "";
    parts[0] += ` (${count(features.originals)} originals${copies})`;
  }
  const extras = [];
  if (features.cache_hits) extras.push(`${count(features.cache_hits)} from the feature cache`);
  const left = features.done >= features.total ? "" : timeLeft(features.eta_s);
  if (left) extras.push(left);
  return [parts[0], ...extras].join(", ");
}

// One line on what a live run is doing now, for the charts while they have nothing to draw yet.
export function stageText(stage, features) {
  if (stage === "features") return `${preparingText(features)}. Each image goes through the pretrained backbone once; the charts start with the first training batch.`;
  if (stage === "data") return "Reading and checking the images; the charts start with the first training batch.";
  if (stage === "head" || stage === "fine_tune") return "Training has started; the first values arrive at the end of its first batch.";
  return "Waiting for the run to start.";
}

// A y range fitted to the values (96.7% and 98.1% must not look the same on a 0-1 axis), with a margin of
// a sixth of their spread (at least `minSpan`), kept inside `bounds`.
export function fittedRange(min, max, bounds = [0, 1], minSpan = 0.02) {
  if (min == null || max == null || !Number.isFinite(min) || !Number.isFinite(max)) return bounds;
  const spread = Math.max(max - min, minSpan);
  const margin = spread / 6;
  const middle = (min + max) / 2;
  let low = Math.min(min - margin, middle - spread / 2 - margin);
  let high = Math.max(max + margin, middle + spread / 2 + margin);
  if (low < bounds[0]) [low, high] = [bounds[0], Math.min(bounds[1], high + (bounds[0] - low))];
  if (high > bounds[1]) [low, high] = [Math.max(bounds[0], low - (high - bounds[1])), bounds[1]];
  return [low, high];
}

// The setting names whose values differ between versions (compared as JSON).
export function differingSettings(versions, names) {
  return names.filter((n) => new Set(versions.map((v) => JSON.stringify((v.settings || {})[n]))).size > 1);
}

// How many of a run's backbone features came from the cache: "features reused: 398 of 643".
export function featureReuse(summary) {
  const counts = (summary && summary.counts) || {};
  if (counts.cache_hits == null || counts.cache_misses == null) return null;
  const total = counts.cache_hits + counts.cache_misses;
  return { reused: counts.cache_hits, total, text: `features reused: ${count(counts.cache_hits)} of ${count(total)}` };
}

// A live run's stage in words, and the short progress under it.
export const STAGE_NAMES = { data: "reading images", features: "preparing images", head: "training the head", fine_tune: "fine-tuning", evaluation: "evaluating" };

export function preparingShort(features) {
  if (!features) return "starting";
  const left = features.done >= features.total ? "" : timeLeft(features.eta_s);
  return `${count(features.done)} of ${count(features.total)} images${left ? ` · ${left}` : ""}`;
}
