// Tagging reports (evaluation.json of a tagging version) -> what the studio shows: PR curves as
// charts can draw them, the per-concept rows, and each concept's false positives and negatives.

// A precision-recall curve as a function of recall, for a line chart: points sorted by recall, and at
// each recall the best precision reached there (the curve's upper envelope, as average precision reads it).
export function prCurve(curve) {
  if (!curve || !curve.recall || !curve.precision) return { x: [], y: [] };
  const best = new Map();
  curve.recall.forEach((r, i) => {
    const p = curve.precision[i];
    if (!Number.isFinite(r) || !Number.isFinite(p)) return;
    if (!best.has(r) || best.get(r) < p) best.set(r, p);
  });
  const x = [...best.keys()].sort((a, b) => a - b);
  return { x, y: x.map((r) => best.get(r)) };
}

// Per-concept rows in a stable order: most images first, then by name.
export function conceptRows(report) {
  return [...(report.per_concept || [])].sort((a, b) => b.support - a.support || a.concept.localeCompare(b.concept));
}

// A concept's mistakes at its threshold: false positives most confident first, false negatives least
// probable first (the worst of each kind leads).
export function conceptErrors(report, concept) {
  const errors = (report.errors || {})[concept] || {};
  const fp = [...(errors.false_positives || [])].sort((a, b) => b.probability - a.probability);
  const fn = [...(errors.false_negatives || [])].sort((a, b) => a.probability - b.probability);
  return { falsePositives: fp, falseNegatives: fn };
}

// A tagging prediction (every concept with probability, threshold, on) split into on and off, each most probable first.
export function splitOnOff(predictions) {
  const sorted = [...(predictions || [])].sort((a, b) => b.probability - a.probability);
  return { on: sorted.filter((p) => p.on), off: sorted.filter((p) => !p.on) };
}

export const isTagging = (report) => !!report && report.task === "tagging";
