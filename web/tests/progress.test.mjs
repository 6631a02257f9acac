// What the version page says while images are prepared, the compare page's fitted axis and differing settings.
import assert from "node:assert/strict";
import { test } from "node:test";
import { differingSettings, featureReuse, fittedRange, preparingText, stageText, timeLeft } from "../src/components/curves.js";

test("feature progress names originals, augmented copies and the time left", () => {
  const event = { done: 96, total: 1539, cache_hits: 0, originals: 877, augmented_copies: 662, eta_s: 118.4 };
  assert.equal(preparingText(event), "Preparing images: 96 of 1,539 (877 originals + 662 augmented copies), about 2 min left");
  assert.equal(preparingText({ ...event, cache_hits: 400, eta_s: 31 }),
    "Preparing images: 96 of 1,539 (877 originals + 662 augmented copies), 400 from the feature cache, about 30 s left");
  assert.equal(preparingText({ ...event, augmented_copies: 0, total: 877, eta_s: null }), "Preparing images: 96 of 877 (877 originals)");
  assert.equal(preparingText({ done: 4, total: 10, cache_hits: 0 }), "Preparing images: 4 of 10");  // a detector's events
  assert.equal(preparingText({ ...event, done: 1539 }), "Preparing images: 1,539 of 1,539 (877 originals + 662 augmented copies)");
  assert.match(stageText("features", event), /^Preparing images: 96 of 1,539 .*the charts start with the first training batch\.$/);
  assert.equal(timeLeft(3), "about 5 s left");
  assert.equal(timeLeft(0.2), "almost done");
});

test("the axis fits the values with a margin, inside 0-1", () => {
  const [low, high] = fittedRange(0.967, 0.981);
  assert.ok(low < 0.967 && low > 0.95 && high > 0.981 && high <= 1, `${low}-${high}`);
  // The two values lie far apart on it: more than half the axis between them.
  assert.ok((0.981 - 0.967) / (high - low) > 0.5);
  // Near 1 the range is shifted down rather than cut.
  const [l2, h2] = fittedRange(0.99, 1.0);
  assert.equal(h2, 1);
  assert.ok(l2 < 0.99 && 1 - l2 >= 0.02);
  assert.deepEqual(fittedRange(null, null), [0, 1]);
  const [l3, h3] = fittedRange(0.5, 0.9);
  assert.ok(l3 < 0.5 && h3 > 0.9 && h3 - l3 < 0.6);
});

test("only the settings that differ, and how many features were reused", () => {
  const versions = [{ settings: { epochs: 5, dropout: 0.2, anchor_sizes: [32, 64] } }, { settings: { epochs: 9, dropout: 0.2, anchor_sizes: [32, 64] } }];
  assert.deepEqual(differingSettings(versions, ["epochs", "dropout", "anchor_sizes"]), ["epochs"]);
  assert.deepEqual(featureReuse({ counts: { cache_hits: 398, cache_misses: 245 } }),
    { reused: 398, total: 643, text: "features reused: 398 of 643" });
  assert.equal(featureReuse({ counts: {} }), null);
});

test("the stage box's short progress", async () => {
  const { preparingShort } = await import("../src/components/curves.js");
  assert.equal(preparingShort({ done: 96, total: 1539, eta_s: 118 }), "96 of 1,539 images · about 2 min left");
  assert.equal(preparingShort({ done: 1539, total: 1539, eta_s: 0 }), "1,539 of 1,539 images");
  assert.equal(preparingShort(null), "starting");
});
