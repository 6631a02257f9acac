// Detection reports (evaluation.json of a detection version, evaluation/detection.py) -> what the
// studio shows: each validation image's boxes sorted into found / missed / right / false positive, the
// gallery's order and filters, the confusion matrix's cells as image filters, and totals.

export const isDetection = (report) => !!report && report.task === "detection";

// Okabe-Ito hues, as the report's own picture (detections.png) draws them.
export const BOX_KINDS = {
  found: { colour: "#009e73", dashed: false, label: "true box, found" },
  missed: { colour: "#f0e442", dashed: true, ink: "#000", label: "true box, missed (false negative)" },
  right: { colour: "#0072b2", dashed: false, label: "predicted box, right" },
  false_positive: { colour: "#d55e00", dashed: true, label: "predicted box, wrong (false positive)" },
  predicted: { colour: "#0072b2", dashed: false, label: "predicted box" },
};

const corners = (box) => (Array.isArray(box) ? box : [box.x_min, box.y_min, box.x_max, box.y_max]);
const pct = (v) => `${Math.round(v * 100)}%`;

// One image of the report -> boxes for the overlay: [{kind, box: [x1, y1, x2, y2], label, concept}].
export function imageBoxes(image, { truth = true, predicted = true } = {}) {
  const boxes = [];
  if (truth)
    for (const t of image.true || [])
      boxes.push({ kind: t.matched ? "found" : "missed", box: corners(t.box), concept: t.concept, label: t.matched ? t.concept : `${t.concept}: missed` });
  if (predicted)
    for (const p of image.predicted || [])
      boxes.push({ kind: p.correct ? "right" : "false_positive", box: corners(p.box), concept: p.concept, score: p.score, label: `${p.concept} ${pct(p.score)}${p.correct ? "" : " ✗"}` });
  return boxes;
}

// A prediction of POST /versions/{id}/predict ({label, score, box: {x_min, ...}}) -> overlay boxes.
export const predictionBoxes = (predictions) =>
  (predictions || []).map((p) => ({ kind: "predicted", box: corners(p.box), concept: p.label, score: p.score, label: `${p.label} ${pct(p.score)}` }));

export const errorCount = (image) => (image.false_positives || 0) + (image.false_negatives || 0);

// What an image's card says under it, in a few words.
export function verdict(image) {
  const objects = (image.true || []).length;
  const found = (image.true || []).filter((t) => t.matched).length;
  const predicted = (image.predicted || []).length;
  const parts = [objects ? `${objects} object${objects === 1 ? "" : "s"}` : "no object"];
  if (objects) parts.push(found === objects ? "all found" : `${found} found`);
  else if (!predicted) parts.push("none predicted");
  if (image.false_negatives) parts.push(`${image.false_negatives} missed`);
  if (image.false_positives) parts.push(`${image.false_positives} false positive${image.false_positives === 1 ? "" : "s"}`);
  return parts.join(" · ");
}

// Whether an image has a box that a cell of the confusion matrix counts ({true, predicted}: concept
// names or "background"). The report counts boxes, matched once over the whole image; this finds the
// images where such a box is: right answers, misses, false positives, and misses beside a wrong box.
export function inCell(image, cell, background = "background") {
  const missed = (c) => (image.true || []).some((t) => !t.matched && t.concept === c);
  const wrong = (c) => (image.predicted || []).some((p) => !p.correct && p.concept === c);
  if (cell.true === background && cell.predicted === background) return false;
  if (cell.true === background) return wrong(cell.predicted);
  if (cell.predicted === background) return missed(cell.true);
  if (cell.true === cell.predicted) return (image.predicted || []).some((p) => p.correct && p.concept === cell.true);
  return missed(cell.true) && wrong(cell.predicted);
}

export function cellTitle(cell, background = "background") {
  if (cell.true === background) return `Images with a ${cell.predicted} box where there is no object`;
  if (cell.predicted === background) return `Images with a ${cell.true} the detector missed`;
  if (cell.true === cell.predicted) return `Images with a ${cell.true} found`;
  return `Images with a ${cell.true} missed beside a wrong ${cell.predicted} box`;
}

// The gallery: images with the most errors first (the report's `errors` order), then the others in
// the report's order; `onlyErrors`, `concept` (on a true or predicted box) and `cell` filter it.
export function galleryImages(report, { onlyErrors = false, concept = null, cell = null } = {}) {
  const images = report.images || [];
  const rank = new Map((report.errors || []).map((path, i) => [path, i]));
  const ordered = [...images].sort((a, b) => (rank.has(a.path) ? rank.get(a.path) : Infinity) - (rank.has(b.path) ? rank.get(b.path) : Infinity));
  return ordered.filter(
    (image) =>
      (!onlyErrors || errorCount(image) > 0) &&
      (!concept || [...(image.true || []), ...(image.predicted || [])].some((b) => b.concept === concept)) &&
      (!cell || inCell(image, cell)),
  );
}

// Precision and recall over every box (all concepts together), from the per-concept counts.
export function totals(report) {
  const sum = (k) => (report.per_class || []).reduce((a, r) => a + (r[k] || 0), 0);
  const tp = sum("true_positives");
  const fp = sum("false_positives");
  const fn = sum("false_negatives");
  return { tp, fp, fn, precision: tp + fp ? tp / (tp + fp) : null, recall: tp + fn ? tp / (tp + fn) : null };
}
