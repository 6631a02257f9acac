"""Object detection: boxes, each with a concept, on each image. Faster R-CNN with a feature pyramid.

The model is a detector (``models/detector.py``), trained by ``training/detection.py``; this module
says what detection's data, metrics, report and predictions are. As the specification says, only
images with at least one box are trained on; images annotated "without concept" (no box) are
negatives in validation, where every box predicted on them is a false positive. The split is
stratified on the concepts present in each image, as tagging's. Each epoch reports ``val_map50``
(the monitor: COCO mAP at IoU 0.5), ``val_map`` (mAP over IoU 0.5 to 0.95), ``val_map75`` and the
loss components. Report schema: ``evaluation/detection.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from visiontrain.data.dataset import Sample
from visiontrain.data.errors import DataError
from visiontrain.settings import TrainingSettings
from visiontrain.tasks.base import Task, register_task

MIN_BOXES_PER_CONCEPT = 10


@register_task
class Detection(Task):
    name = "detection"
    model = "detector"
    monitor = "val_map50"
    min_classes = 1
    pictures = ("pr_curves.png", "confusion_matrix.png", "detections.png")

    # --- data

    def check_samples(self, classes: list[str], samples: list[Sample], where: str) -> None:
        known = set(classes)
        for sample in samples:
            for box in sample.boxes:
                if box.concept not in known:
                    raise DataError(f"{sample.path} in {where} has a box of concept {box.concept!r}, which is not among {classes}")
                if not (box.x_max > box.x_min and box.y_max > box.y_min) or min(box.x_min, box.y_min) < 0:
                    raise DataError(f"{sample.path} in {where} has an empty or negative box {list(box.corners)} ({box.concept})")

    def split(self, samples: list[Sample], fraction: float, seed: int, classes: list[str]) -> tuple[list[Sample], list[Sample], list[str]]:
        from visiontrain.data.split import content_keyed_multilabel_split

        return content_keyed_multilabel_split(samples, fraction, seed, classes=classes)

    def check_split(self, classes: list[str], train: list[Sample], val: list[Sample]) -> list[str]:
        trained = [s for s in train if s.boxes]
        if not trained:
            raise DataError("no training image has a box: draw boxes around the objects on some images first")
        train_boxes = box_counts(classes, trained)
        empty = [c for c, n in train_boxes.items() if n == 0]
        if empty:
            raise DataError(
                f"concept(s) {', '.join(repr(c) for c in empty)} have no box on a training image: draw some or leave them "
                "out of the model"
            )
        warnings = []
        negatives = len(train) - len(trained)
        if negatives:
            warnings.append(
                f"{negatives} training image(s) without any box are not trained on (only images with boxes are); images "
                "without concept count as negatives in validation"
            )
        unmeasured = [c for c, n in box_counts(classes, val).items() if n == 0]
        if unmeasured:
            warnings.append(
                f"concept(s) {', '.join(repr(c) for c in unmeasured)} have no box in validation: their AP cannot be measured"
            )
        few = [f"'{c}': {n}" for c, n in train_boxes.items() if n < MIN_BOXES_PER_CONCEPT]
        if few:
            warnings.append(
                f"{len(few)} concept(s) have fewer than {MIN_BOXES_PER_CONCEPT} training boxes ({', '.join(few[:10])}"
                f"{', ...' if len(few) > 10 else ''}): add images of them"
            )
        return warnings

    def targets(self, samples: list[Sample], classes: list[str]) -> list[dict[str, torch.Tensor]]:
        """Per image: ``boxes`` (M, 4) xyxy in pixels and ``labels`` (M,) 0-based concept indexes."""
        index = {name: i for i, name in enumerate(classes)}
        return [box_target(sample, index) for sample in samples]

    # --- metrics

    def epoch_metrics(self) -> Any:
        from visiontrain.evaluation.detection import map_metric

        return map_metric()

    def epoch_values(self, computed: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        from visiontrain.evaluation.detection import map_values

        return map_values(computed)

    def fit_postprocessing(self, settings: TrainingSettings, predictions: list[dict[str, torch.Tensor]],
                           targets: list[dict[str, torch.Tensor]]) -> dict[str, Any]:
        """What predict applies after the model: the score below which a box is not reported (the
        setting, or where F1 is best on the best model's validation predictions)."""
        from visiontrain.evaluation.detection import fit_score_threshold

        if settings.score_threshold is not None:
            return {"score_threshold": float(settings.score_threshold), "score_threshold_source": "settings"}
        return {"score_threshold": fit_score_threshold(predictions, targets), "score_threshold_source": "validation F1"}

    # --- report and predictions

    def report(self, classes: list[str], predictions: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]],
               paths: list[str], state: dict[str, Any]) -> dict[str, Any]:
        from visiontrain.evaluation.detection import build_detection_report

        return build_detection_report(classes, predictions, targets, paths, score_threshold=float(state.get("score_threshold", 0.5)))

    def write_pictures(self, report: dict[str, Any], out_dir: Path) -> None:
        from visiontrain.evaluation.detection import write_detection_pictures

        write_detection_pictures(report, Path(out_dir))

    def headline(self, report: dict[str, Any]) -> dict[str, Any]:
        from visiontrain.evaluation.detection import detection_headline

        return detection_headline(report)

    def predictions(self, found: dict[str, Any], classes: list[str], state: dict[str, Any]) -> list[dict[str, Any]]:
        """One image's detections (numpy or tensors: boxes in image pixels, scores, 0-based labels), best first,
        those at or above the score threshold."""
        threshold = float(state.get("score_threshold", 0.5))
        boxes, scores, labels = (_as_list(found[k]) for k in ("boxes", "scores", "labels"))
        result = []
        for box, score, label in sorted(zip(boxes, scores, labels), key=lambda item: -item[1]):
            if score < threshold:
                continue
            x_min, y_min, x_max, y_max = (round(float(v), 2) for v in box)
            result.append({"label": classes[int(label)], "score": float(score),
                           "box": {"x_min": x_min, "y_min": y_min, "x_max": x_max, "y_max": y_max}})
        return result


def box_target(sample: Sample, index: dict[str, int]) -> dict[str, torch.Tensor]:
    if not sample.boxes:
        return {"boxes": torch.zeros((0, 4), dtype=torch.float32), "labels": torch.zeros((0,), dtype=torch.int64)}
    return {
        "boxes": torch.tensor([box.corners for box in sample.boxes], dtype=torch.float32),
        "labels": torch.tensor([index[box.concept] for box in sample.boxes], dtype=torch.int64),
    }


def box_counts(classes: list[str], samples: list[Sample]) -> dict[str, int]:
    counts = {c: 0 for c in classes}
    for sample in samples:
        for box in sample.boxes:
            counts[box.concept] += 1
    return counts


def _as_list(values: Any) -> list[Any]:
    return values.tolist() if hasattr(values, "tolist") else list(values)
