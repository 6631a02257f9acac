"""Object-detection metrics, the detection report and its pictures.

Two ways of counting, both on the boxes of each image:

* **Average precision** (``map50``, ``map`` = COCO mAP@[.5:.95], ``map75``, per-concept ``ap50`` and
  ``ap``): torchmetrics' ``MeanAveragePrecision`` with the ``faster_coco_eval`` backend, i.e. the COCO
  reference evaluation (101-point interpolated precision, at most 100 detections per image, every
  score). A mean is over the concepts with at least one true box; a concept without one has no AP
  (``null``). Where nothing can be measured (no true box at all) torchmetrics says -1; here that is 0,
  so a monitored metric never goes negative.
* **Decisions at a score threshold** (precision, recall, F1, the confusion matrix, each image's
  verdicts): the predictions scoring at least ``score_threshold``, most confident first, each matched
  greedily to the unmatched true box *of its concept* with the highest IoU, if that IoU is at least
  ``iou_threshold``: a match is a true positive, an unmatched prediction a false positive, an
  unmatched true box a false negative. Any prediction on an image annotated without concept (no true
  box) is a false positive.

The confusion matrix (rows = true concept, columns = predicted concept, last row and column
``background``) is built on those same matches, so its diagonal is each concept's true positives.
The predictions left unmatched are then matched greedily, regardless of concept, to the true boxes
left unmatched (IoU at least ``iou_threshold``): such a pair is a wrong-concept detection (cell
[true, predicted]; it counts as a false positive of the predicted concept and a false negative of
the true one). What is still unmatched is a false positive in the background row or a missed true
box in the background column. So row ``c`` sums to concept ``c``'s true boxes and column ``d`` to
concept ``d``'s predictions above the threshold.

The precision-recall curves (``pr_curves``) are COCO's at IoU 0.5, from the same evaluation as the
AP (its extended summary): precision at the 101 recall points 0, 0.01, ..., 1 (interpolated: the best
precision at that recall or beyond; 0 past the highest recall reached). A concept without true boxes
has empty lists. Schema of the report::

    {"task": "detection", "num_images", "num_boxes" (true boxes), "classes", "map50", "map", "map75",
     "score_threshold", "iou_threshold",
     "per_class": [{"concept", "ap50", "ap", "precision", "recall", "f1", "support" (true boxes),
                    "true_positives", "false_positives", "false_negatives"}],
     "macro": {"precision", "recall", "f1", "ap50", "ap"}  (mean over concepts with support; null if none),
     "pr_curves": {concept: {"precision": [...], "recall": [...]}},
     "confusion_matrix": {"labels": classes + ["background"], "matrix": [[...]]},
     "images": [{"path", "true": [{"concept", "box", "matched"}], "predicted": [{"concept", "score", "box", "correct"}],
                 "false_positives", "false_negatives"}]  (input order; predictions above the threshold, most confident first),
     "errors": [path, ...]  (images with a false positive or negative, the most errors first)}

Boxes are ``[x1, y1, x2, y2]`` in the original image's pixels; every number is a Python int, float
or ``null``, so the report goes through ``json.dumps`` as it is.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torchmetrics.detection import MeanAveragePrecision
from torchvision.ops import box_iou

from visiontrain.evaluation.metrics import DIGITS
from visiontrain.evaluation.report import pr_panel_axes

PR_CURVES_FILE = "pr_curves.png"
CONFUSION_MATRIX_FILE = "confusion_matrix.png"
DETECTIONS_FILE = "detections.png"
PICTURES = (PR_CURVES_FILE, CONFUSION_MATRIX_FILE, DETECTIONS_FILE)
BACKGROUND = "background"
# The backend of MeanAveragePrecision: the COCO reference evaluation's numbers, in C++, numpy only.
BACKEND = "faster_coco_eval"
DEFAULT_IOU_THRESHOLD = 0.5
BOX_DIGITS = 2
CURVE_DIGITS = 4
MAX_GALLERY = 12
MAX_PICTURED = 16
# Colours of the gallery (colour-blind-safe Okabe-Ito hues).
TRUE_COLOUR = "#009e73"
CORRECT_COLOUR = "#0072b2"
FALSE_POSITIVE_COLOUR = "#d55e00"
MISSED_COLOUR = "#f0e442"


def map_metric(*, extended_summary: bool = False) -> MeanAveragePrecision:
    """The mAP metric updated each validation batch (``predictions``/``targets`` as in this module's
    convention): boxes xyxy, COCO evaluation, no per-class pass (it costs one evaluation per class).
    ``extended_summary`` adds the precision/recall arrays the report's curves and per-concept AP use."""
    return MeanAveragePrecision(
        iou_type="bbox", box_format="xyxy", backend=BACKEND, class_metrics=False, extended_summary=extended_summary
    )


def map_values(computed: dict[str, Any]) -> dict[str, torch.Tensor]:
    """``{"val_map50", "val_map" (COCO mAP@[.5:.95]), "val_map75"}`` from ``MeanAveragePrecision.compute()``,
    0 where torchmetrics says -1 (nothing to measure: no true box)."""
    return {
        name: _not_negative(computed[key])
        for name, key in (("val_map50", "map_50"), ("val_map", "map"), ("val_map75", "map_75"))
    }


def _not_negative(value: torch.Tensor) -> torch.Tensor:
    value = torch.as_tensor(value, dtype=torch.float32)
    return torch.where(value < 0, torch.zeros_like(value), value)


def check_detections(
    classes: list[str], predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]], paths: list[str]
) -> tuple[list[dict[str, torch.Tensor]], list[dict[str, torch.Tensor]]]:
    """Predictions and targets on the CPU (float32 boxes and scores, int64 labels), checked against ``classes``."""
    if not predictions:
        raise ValueError("no images to evaluate (predictions is empty)")
    if len(targets) != len(predictions) or len(paths) != len(predictions):
        raise ValueError(f"predictions, targets and paths must have one entry per image; got {len(predictions)}, {len(targets)}, {len(paths)}")
    preds = [_checked(p, n, len(classes), with_scores=True) for n, p in enumerate(predictions)]
    truth = [_checked(t, n, len(classes), with_scores=False) for n, t in enumerate(targets)]
    return preds, truth


def _checked(item: dict[str, Any], n: int, num_classes: int, *, with_scores: bool) -> dict[str, torch.Tensor]:
    what = "prediction" if with_scores else "target"
    boxes = torch.as_tensor(item["boxes"]).detach().to("cpu", torch.float32).reshape(-1, 4) if len(item["boxes"]) else torch.zeros(0, 4)
    labels = torch.as_tensor(item["labels"]).detach().to("cpu", torch.int64).reshape(-1)
    if labels.shape[0] != boxes.shape[0]:
        raise ValueError(f"{what} {n}: {boxes.shape[0]} boxes but {labels.shape[0]} labels")
    if not torch.isfinite(boxes).all():
        raise ValueError(f"{what} {n}: boxes must be finite")
    if ((labels < 0) | (labels >= num_classes)).any():
        raise ValueError(f"{what} {n}: labels must be indexes into the {num_classes} classes; got {labels.tolist()}")
    out = {"boxes": boxes, "labels": labels}
    if with_scores:
        scores = torch.as_tensor(item["scores"]).detach().to("cpu", torch.float32).reshape(-1)
        if scores.shape[0] != boxes.shape[0]:
            raise ValueError(f"{what} {n}: {boxes.shape[0]} boxes but {scores.shape[0]} scores")
        if not torch.isfinite(scores).all():
            raise ValueError(f"{what} {n}: scores must be finite")
        out["scores"] = scores
    return out


def build_detection_report(
    classes: list[str],
    predictions: list[dict[str, torch.Tensor]],
    targets: list[dict[str, torch.Tensor]],
    paths: list[str],
    *,
    score_threshold: float,
    iou_threshold: float = DEFAULT_IOU_THRESHOLD,
) -> dict[str, Any]:
    """The detection report for N images (schema in the module's docstring): ``predictions[n]`` is
    ``{"boxes" (K, 4) xyxy, "scores" (K,), "labels" (K,)}``, ``targets[n]`` ``{"boxes" (M, 4), "labels" (M,)}``
    (M = 0: an image without concept), labels indexes into ``classes``, ``paths[n]`` the image's path."""
    classes = [str(c) for c in classes]
    if not classes or len(set(classes)) != len(classes) or BACKGROUND in classes:
        raise ValueError(f"classes must be distinct names, at least one, none named {BACKGROUND!r}; got {classes}")
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1]; got {iou_threshold}")
    if not math.isfinite(score_threshold):
        raise ValueError(f"score_threshold must be a finite number; got {score_threshold}")
    preds, truth = check_detections(classes, predictions, targets, paths)

    metric = map_metric(extended_summary=True)
    metric.update(preds, truth)
    computed = metric.compute()
    headline = {key: round(float(value), DIGITS) for key, value in map_values(computed).items()}
    ap50, ap = _per_class_ap(computed, len(classes))

    num = len(classes)
    matrix = [[0] * (num + 1) for _ in range(num + 1)]
    images = []
    for pred, true, path in zip(preds, truth, paths):
        images.append(_judge_image(classes, pred, true, str(path), score_threshold, iou_threshold, matrix))

    per_class = []
    for c, name in enumerate(classes):
        tp = matrix[c][c]
        support = sum(matrix[c])
        predicted = sum(row[c] for row in matrix)
        fp, fn = predicted - tp, support - tp
        precision = tp / predicted if predicted else 0.0
        recall = tp / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class.append({
            "concept": name, "ap50": ap50[c], "ap": ap[c],
            "precision": round(precision, DIGITS), "recall": round(recall, DIGITS), "f1": round(f1, DIGITS),
            "support": support, "true_positives": tp, "false_positives": fp, "false_negatives": fn,
        })
    seen = [row for row in per_class if row["support"]]
    macro = {k: _mean([row[k] for row in seen]) for k in ("precision", "recall", "f1", "ap50", "ap")}

    wrong = [(img["false_positives"] + img["false_negatives"], n) for n, img in enumerate(images)]
    errors = [images[n]["path"] for count, n in sorted(wrong, key=lambda x: (-x[0], x[1])) if count]
    return {
        "task": "detection",
        "num_images": len(images),
        "num_boxes": sum(len(t["labels"]) for t in truth),
        "classes": classes,
        "map50": headline["val_map50"],
        "map": headline["val_map"],
        "map75": headline["val_map75"],
        "score_threshold": float(score_threshold),
        "iou_threshold": float(iou_threshold),
        "per_class": per_class,
        "macro": macro,
        "pr_curves": _pr_curves(classes, computed, metric.rec_thresholds),
        "confusion_matrix": {"labels": classes + [BACKGROUND], "matrix": matrix},
        "images": images,
        "errors": errors,
    }


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), DIGITS) if known else None


def _category_index(computed: dict[str, Any], num_classes: int) -> dict[int, int]:
    """Concept index -> index along the K axis of the extended summary (the labels seen, sorted)."""
    seen = [int(c) for c in torch.atleast_1d(computed["classes"]).tolist()]
    return {c: k for k, c in enumerate(seen) if 0 <= c < num_classes}


def _per_class_ap(computed: dict[str, Any], num_classes: int) -> tuple[list[float | None], list[float | None]]:
    """AP at IoU 0.5 and AP@[.5:.95] per concept (None without a true box), as COCO's summary averages:
    the mean of the precision array over recall points (and IoU thresholds), area "all", 100 detections."""
    ap50: list[float | None] = [None] * num_classes
    ap: list[float | None] = [None] * num_classes
    if "precision" not in computed:  # no image at all reached the evaluation
        return ap50, ap
    precision = computed["precision"][:, :, :, 0, -1]  # (T, R, K)
    for c, k in _category_index(computed, num_classes).items():
        values = precision[:, :, k]
        if (values < 0).all():  # no true box of this concept
            continue
        ap50[c] = round(float(values[0][values[0] > -1].mean()), DIGITS)
        ap[c] = round(float(values[values > -1].mean()), DIGITS)
    return ap50, ap


def _pr_curves(classes: list[str], computed: dict[str, Any], recall_points: list[float]) -> dict[str, dict[str, list[float]]]:
    curves = {name: {"precision": [], "recall": []} for name in classes}
    if "precision" not in computed:
        return curves
    precision = computed["precision"][0, :, :, 0, -1]  # IoU 0.5: (R, K)
    for c, k in _category_index(computed, len(classes)).items():
        values = precision[:, k]
        if (values < 0).all():
            continue
        curves[classes[c]] = {
            "precision": [round(float(p), CURVE_DIGITS) for p in values.tolist()],
            "recall": [round(float(r), CURVE_DIGITS) for r in recall_points],
        }
    return curves


def _greedy(ious: list[list[float]], rows: list[int], cols: list[int], iou_threshold: float) -> list[tuple[int, int]]:
    """Match each row (a prediction, in the given order) to the free column (true box) with the highest
    IoU of at least ``iou_threshold`` (the first such column on a tie); the pairs matched."""
    free = set(cols)
    pairs = []
    for r in rows:
        best, best_iou = None, iou_threshold
        for c in cols:
            if c in free and (ious[r][c] > best_iou or (best is None and ious[r][c] >= best_iou)):
                best, best_iou = c, ious[r][c]
        if best is not None:
            free.discard(best)
            pairs.append((r, best))
    return pairs


def _judge_image(
    classes: list[str], pred: dict[str, torch.Tensor], true: dict[str, torch.Tensor], path: str,
    score_threshold: float, iou_threshold: float, matrix: list[list[int]],
) -> dict[str, Any]:
    background = len(classes)
    keep = (pred["scores"] >= score_threshold).nonzero().flatten().tolist()
    keep.sort(key=lambda i: -float(pred["scores"][i]))  # stable: equal scores keep their order
    p_labels, t_labels = pred["labels"].tolist(), true["labels"].tolist()
    ious = box_iou(pred["boxes"], true["boxes"]).tolist() if keep and t_labels else []

    # Same concept first: the true positives.
    correct: dict[int, int] = {}
    for c in sorted({p_labels[i] for i in keep}):
        rows = [i for i in keep if p_labels[i] == c]
        cols = [j for j, t in enumerate(t_labels) if t == c]
        correct.update(_greedy(ious, rows, cols, iou_threshold))
    # Then what is left, whatever its concept: wrong-concept detections.
    left_rows = [i for i in keep if i not in correct]
    left_cols = [j for j in range(len(t_labels)) if j not in correct.values()]
    confused = dict(_greedy(ious, left_rows, left_cols, iou_threshold))
    for i in keep:
        j = correct.get(i, confused.get(i))
        matrix[t_labels[j] if j is not None else background][p_labels[i]] += 1
    taken = set(correct.values()) | set(confused.values())
    for j, t in enumerate(t_labels):
        if j not in taken:
            matrix[t][background] += 1

    matched = set(correct.values())
    return {
        "path": path,
        "true": [
            {"concept": classes[t], "box": _box(true["boxes"][j]), "matched": j in matched}
            for j, t in enumerate(t_labels)
        ],
        "predicted": [
            {"concept": classes[p_labels[i]], "score": round(float(pred["scores"][i]), DIGITS), "box": _box(pred["boxes"][i]), "correct": i in correct}
            for i in keep
        ],
        "false_positives": len(keep) - len(correct),
        "false_negatives": len(t_labels) - len(matched),
    }


def _box(box: torch.Tensor) -> list[float]:
    return [round(float(v), BOX_DIGITS) for v in box.tolist()]


def detection_headline(report: dict[str, Any]) -> dict[str, float | None]:
    """The few numbers a summary shows: mAP at 0.5, COCO mAP, mAP at 0.75, macro precision and recall."""
    return {
        "map50": report["map50"], "map": report["map"], "map75": report["map75"],
        "precision": report["macro"]["precision"], "recall": report["macro"]["recall"],
    }


def write_detection_pictures(report: dict[str, Any], out_dir: str | Path) -> None:
    """``pr_curves.png``, ``confusion_matrix.png`` and ``detections.png`` (the gallery) into ``out_dir``."""
    from visiontrain.evaluation.report import save_figure

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_figure(pr_curves_figure(report), out / PR_CURVES_FILE)
    save_figure(confusion_matrix_figure(report), out / CONFUSION_MATRIX_FILE)
    save_figure(gallery_figure(report), out / DETECTIONS_FILE)


def pr_curves_figure(report: dict[str, Any]):
    """One precision-recall plot per concept at IoU 0.5 (AP50 and the operating point at the score
    threshold marked); the concepts with the most true boxes when there are many. No pyplot."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    every = report["per_class"]
    rows = sorted(every, key=lambda r: (-r["support"], r["concept"]))[:MAX_PICTURED] if len(every) > MAX_PICTURED else every
    cols = min(4, len(rows))
    lines = (len(rows) + cols - 1) // cols
    figure = Figure(figsize=(3.2 * cols, 3.0 * lines), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    for n, row in enumerate(rows):
        axes = figure.add_subplot(lines, cols, n + 1)
        curve = report["pr_curves"][row["concept"]]
        if curve["recall"]:
            axes.plot(curve["recall"], curve["precision"], color=CORRECT_COLOUR, linewidth=1.5)
            axes.plot([row["recall"]], [row["precision"]], "o", color=FALSE_POSITIVE_COLOUR, markersize=5)
        else:
            axes.text(0.5, 0.5, "no true box", ha="center", va="center", fontsize=8, color="grey")
        ap50 = "n/a" if row["ap50"] is None else f"{row['ap50']:.3f}"
        axes.set_title(f"{_short(row['concept'])}\nAP50 {ap50} · {row['support']} boxes", fontsize=8)
        pr_panel_axes(axes)
    shown = f"; the {len(rows)} of {len(every)} concepts with the most boxes" if len(rows) < len(every) else ""
    figure.suptitle(
        f"Precision-recall at IoU 0.5 (mAP50 {report['map50']:.3f}, mAP {report['map']:.3f}; "
        f"dot: score ≥ {report['score_threshold']:g}{shown})", fontsize=10,
    )
    return figure


def confusion_matrix_figure(report: dict[str, Any]):
    """The confusion matrix with its background row (false positives) and column (missed boxes)."""
    from visiontrain.evaluation.report import confusion_matrix_figure as counts_figure

    matrix = report["confusion_matrix"]
    figure = counts_figure(matrix["matrix"], matrix["labels"])
    axes = figure.axes[0]
    axes.set_xlabel("predicted concept (background: missed true box)")
    axes.set_ylabel("true concept (background: false positive)")
    axes.set_title(
        f"Confusion matrix of boxes (score ≥ {report['score_threshold']:g}, IoU ≥ {report['iou_threshold']:g}; "
        f"{report['num_images']} images)", fontsize=10,
    )
    return figure


def gallery_images(report: dict[str, Any], limit: int = MAX_GALLERY) -> list[dict[str, Any]]:
    """The images the gallery shows: those with the most errors first, then the others in order."""
    by_path = {}
    for image in report["images"]:
        by_path.setdefault(image["path"], image)
    chosen = [by_path[p] for p in report["errors"] if p in by_path]
    named = {id(image) for image in chosen}
    chosen += [image for image in report["images"] if id(image) not in named]
    return chosen[:limit]


def gallery_figure(report: dict[str, Any], limit: int = MAX_GALLERY):
    """Up to ``limit`` images with their boxes: true boxes, correct predictions, false positives and
    missed true boxes each in their colour, with a legend. An unreadable image is a grey tile saying why."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    from visiontrain.data.errors import ImageError
    from visiontrain.data.images import open_image

    shown = gallery_images(report, limit)
    cols = max(1, min(4, len(shown)))
    lines = max(1, (len(shown) + cols - 1) // cols)
    figure = Figure(figsize=(3.6 * cols, 3.4 * lines + 0.6), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    for n, image in enumerate(shown):
        axes = figure.add_subplot(lines, cols, n + 1)
        boxes = [b["box"] for b in image["true"]] + [b["box"] for b in image["predicted"]]
        try:
            picture = open_image(image["path"])
            width, height = picture.size
            picture.thumbnail((480, 480))
            axes.imshow(picture, extent=(0, width, height, 0))
        except (ImageError, OSError) as error:
            width = max([b[2] for b in boxes] + [1.0])
            height = max([b[3] for b in boxes] + [1.0])
            axes.add_patch(Rectangle((0, 0), width, height, color="#dddddd"))
            axes.text(width / 2, height / 2, f"cannot read the image:\n{error}"[:120], ha="center", va="center", fontsize=6, wrap=True)
        for truth in image["true"]:
            x1, y1, x2, y2 = truth["box"]
            if truth["matched"]:
                # Wider than a prediction's line and under it, so it shows around a prediction on the same box.
                axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=TRUE_COLOUR, linewidth=4, zorder=2))
            else:
                axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=MISSED_COLOUR, linewidth=2.5, linestyle="--", zorder=2))
                axes.text(x1, y2, f"missed {_short(truth['concept'], 16)}", fontsize=6, color="black", va="bottom", zorder=4,
                          bbox={"facecolor": MISSED_COLOUR, "edgecolor": "none", "pad": 1})
        for guess in image["predicted"]:
            x1, y1, x2, y2 = guess["box"]
            colour = CORRECT_COLOUR if guess["correct"] else FALSE_POSITIVE_COLOUR
            axes.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5, zorder=3))
            axes.text(x1, y1, f"{_short(guess['concept'], 16)} {guess['score']:.2f}", fontsize=6, color="white", va="top", zorder=4,
                      bbox={"facecolor": colour, "edgecolor": "none", "pad": 1})
        axes.set_xlim(0, width)
        axes.set_ylim(height, 0)
        axes.set_xticks([])
        axes.set_yticks([])
        name = Path(image["path"]).name
        axes.set_title(f"{_short(name, 32)}\n{image['false_positives']} false pos. · {image['false_negatives']} missed", fontsize=8)
    if not shown:
        axes = figure.add_subplot()
        axes.axis("off")
        axes.text(0.5, 0.5, "no image", ha="center", va="center")
    legend = [
        Line2D([], [], color=TRUE_COLOUR, linewidth=4, label="true box (found)"),
        Line2D([], [], color=MISSED_COLOUR, linewidth=2.5, linestyle="--", label="true box missed"),
        Line2D([], [], color=CORRECT_COLOUR, linewidth=1.5, label="correct prediction"),
        Line2D([], [], color=FALSE_POSITIVE_COLOUR, linewidth=1.5, label="false positive"),
    ]
    figure.legend(handles=legend, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    figure.suptitle(
        f"Detections (score ≥ {report['score_threshold']:g}, IoU ≥ {report['iou_threshold']:g}): "
        f"{len(shown)} of {report['num_images']} images, most errors first", fontsize=10,
    )
    return figure


def _short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


# Used when no box is found on the validation images (nothing to fit a threshold on).
FALLBACK_SCORE_THRESHOLD = 0.5


def fit_score_threshold(predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]],
                        *, iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> float:
    """The score threshold with the best F1 over every box of the validation images (micro, all concepts).

    Greedy matching in score order does not depend on where the list is cut, so each prediction is
    judged once (true positive or not, as ``build_detection_report`` judges it) and every cut is
    counted from that. The threshold is placed halfway between the best cut's lowest score and the
    next lower one, so a box scoring just under it on new images is not lost to rounding.
    """
    scored: list[tuple[float, bool]] = []
    positives = 0
    for pred, true in zip(predictions, targets):
        order = sorted(range(len(pred["scores"])), key=lambda i: -float(pred["scores"][i]))
        labels, true_labels = pred["labels"].tolist(), true["labels"].tolist()
        positives += len(true_labels)
        ious = box_iou(pred["boxes"], true["boxes"]).tolist() if order and true_labels else []
        hits: set[int] = set()
        for c in sorted(set(labels)):
            rows = [i for i in order if labels[i] == c]
            cols = [j for j, t in enumerate(true_labels) if t == c]
            hits.update(r for r, _ in _greedy(ious, rows, cols, iou_threshold))
        scored += [(float(pred["scores"][i]), i in hits) for i in order]
    if not scored or positives == 0:
        return FALLBACK_SCORE_THRESHOLD
    scored.sort(key=lambda item: -item[0])
    best_f1, best_index, true_positives = -1.0, 0, 0
    for index, (_, hit) in enumerate(scored):
        true_positives += hit
        if index + 1 < len(scored) and scored[index + 1][0] == scored[index][0]:
            continue  # a cut cannot fall between equal scores
        f1 = 2 * true_positives / (index + 1 + positives)
        if f1 > best_f1:
            best_f1, best_index = f1, index
    lowest = scored[best_index][0]
    below = scored[best_index + 1][0] if best_index + 1 < len(scored) else 0.0
    return round((lowest + below) / 2, 6)
