// Engine events -> chart series: fine-tuning epochs follow the head's on one axis; the best epoch is found.
import assert from "node:assert/strict";
import { test } from "node:test";
import { curves, headlineKey, progressOf } from "../src/components/curves.js";

const events = [
  { type: "stage", stage: "features", status: "started" },
  { type: "features", done: 8, total: 16, cache_hits: 0 },
  { type: "stage", stage: "head", status: "started" },
  { type: "batch", stage: "head", epoch: 1, step: 1, loss: 0.7, learning_rate: 0.001 },
  { type: "epoch", stage: "head", epoch: 1, train_loss: 0.7, val_loss: 0.6, val_accuracy: 0.6, learning_rate: 0.001, best: true },
  { type: "batch", stage: "head", epoch: 2, step: 2, loss: 0.5, learning_rate: 0.001 },
  { type: "epoch", stage: "head", epoch: 2, train_loss: 0.5, val_loss: 0.4, val_accuracy: 0.8, learning_rate: 0.001, best: true },
  { type: "stage", stage: "fine_tune", status: "started" },
  { type: "batch", stage: "fine_tune", epoch: 1, step: 3, loss: 0.4, learning_rate: 0.0001 },
  { type: "epoch", stage: "fine_tune", epoch: 1, train_loss: 0.4, val_loss: 0.45, val_accuracy: 0.75, learning_rate: 0.0001, best: false },
];

test("fine-tuning epochs continue the head's, and the last best epoch is marked", () => {
  const c = curves(events);
  assert.deepEqual(c.metric, { x: [1, 2, 3], y: [0.6, 0.8, 0.75] });
  assert.deepEqual(c.valLoss.x, [1, 2, 3]);
  assert.deepEqual(c.batchLoss, { x: [1, 2, 3], y: [0.7, 0.5, 0.4] });
  assert.equal(c.lrAxis, "step");
  assert.equal(c.bestEpoch, 2);
  assert.equal(c.bestValue, 0.8);
  assert.equal(c.fineTuneStart, 2.5);
  assert.equal(c.epochsDone, 3);
});

test("the stage in progress and feature progress come from the latest events", () => {
  assert.deepEqual(progressOf(events.slice(0, 2)), { stage: "features", features: events[1] });
  assert.equal(progressOf(events).stage, "fine_tune");
});

test("no events: empty series, nothing marked; mAP is the headline when reported", () => {
  const c = curves([]);
  assert.deepEqual(c.metric, { x: [], y: [] });
  assert.equal(c.bestEpoch, null);
  assert.equal(headlineKey([{ type: "epoch", epoch: 1, val_map: 0.4 }]), "val_map");
});

test("the epoch events' monitor names the headline; PR curves become a function of recall", async () => {
  const { prCurve, conceptErrors, splitOnOff } = await import("../src/components/tagging.js");
  const tagging = [{ type: "epoch", stage: "head", epoch: 1, monitor: "val_map", val_map: 0.5, val_accuracy: 0.9, best: true }];
  assert.equal(headlineKey(tagging), "val_map");
  assert.deepEqual(curves(tagging).metric, { x: [1], y: [0.5] });
  assert.equal(headlineKey([{ type: "epoch", epoch: 1, monitor: "val_accuracy", val_map: 0.4, val_accuracy: 0.7 }]), "val_accuracy");
  // sklearn order (recall falling), a repeated recall keeps its best precision.
  assert.deepEqual(prCurve({ precision: [0.5, 0.6, 1, 1], recall: [1, 0.5, 0.5, 0], thresholds: [0.1, 0.4, 0.8] }), {
    x: [0, 0.5, 1],
    y: [1, 1, 0.5],
  });
  const errors = conceptErrors(
    { errors: { dog: { false_positives: [{ path: "a", probability: 0.6 }, { path: "b", probability: 0.9 }], false_negatives: [{ path: "c", probability: 0.3 }, { path: "d", probability: 0.1 }] } } },
    "dog",
  );
  assert.deepEqual(errors.falsePositives.map((e) => e.path), ["b", "a"]);
  assert.deepEqual(errors.falseNegatives.map((e) => e.path), ["d", "c"]);
  assert.deepEqual(conceptErrors({}, "cat"), { falsePositives: [], falseNegatives: [] });
  const { on, off } = splitOnOff([
    { label: "a", probability: 0.2, on: false, threshold: 0.5 },
    { label: "b", probability: 0.7, on: true, threshold: 0.6 },
    { label: "c", probability: 0.4, on: true, threshold: 0.3 },
  ]);
  assert.deepEqual(on.map((p) => p.label), ["b", "c"]);
  assert.deepEqual(off.map((p) => p.label), ["a"]);
});

test("fine-tuning's best epoch is the run's only when it beats the head's (a tie keeps the head's)", () => {
  const tuned = (accuracy) => [
    ...events.slice(0, 9),
    { type: "epoch", stage: "fine_tune", epoch: 1, train_loss: 0.4, val_loss: 0.45, val_accuracy: accuracy, best: true },
  ];
  assert.equal(curves(tuned(0.8)).bestEpoch, 2);
  assert.equal(curves(tuned(0.85)).bestEpoch, 3);
  assert.equal(curves(tuned(0.85)).bestValue, 0.85);
});
