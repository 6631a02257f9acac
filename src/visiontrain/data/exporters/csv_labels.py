"""CSV, the layouts our CSV importer reads: labels for classification and tagging, boxes for detection.

- classification and tagging: ``labels.csv`` with ``path,label,split`` (tagging: ``path,labels,split``,
  the concepts joined by ``;``, an empty cell meaning "without concept") and the images in ``images/``;
- detection: ``<split>_labels.csv`` per split (``labels.csv`` for images without one) with the
  TensorFlow object-detection columns ``filename,width,height,class,xmin,ymin,xmax,ymax``, one row
  per box; an image without objects has one row with an empty class and no corners.

Concepts no image uses are not in a CSV file: they do not come back when it is imported.
"""

from __future__ import annotations

import csv
import io

from visiontrain.data.exporters.base import SPLITS, ExportError, ExportFormat, ExportItem, Sink, number_text, register

TAG_SEPARATOR = ";"


def write(items: list[ExportItem], concepts: list[str], task: str, sink: Sink) -> dict[str, str]:
    paths: dict[str, str] = {}
    for item in items:
        path = f"images/{item.file_name}"
        sink.write_file(path, item.image.path)
        paths[item.image.name] = path
    if task == "detection":
        for split in (*SPLITS, None):
            chosen = [item for item in items if item.split == split]
            if chosen:
                sink.write_text(f"{split}_labels.csv" if split else "labels.csv", _boxes_table(chosen))
    else:
        sink.write_text("labels.csv", _labels_table(items, task))
    return paths


def _labels_table(items: list[ExportItem], task: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["path", "labels" if task == "tagging" else "label", "split"])
    for item in items:
        if task == "tagging":
            clashing = [tag for tag in item.tags if TAG_SEPARATOR in tag]
            if clashing:
                raise ExportError(
                    f"concept {clashing[0]!r} holds {TAG_SEPARATOR!r}, which separates concepts in a CSV of tags"
                )
            labels = TAG_SEPARATOR.join(item.tags)
        else:
            labels = item.label or ""
        writer.writerow([f"images/{item.file_name}", labels, item.split or ""])
    return buffer.getvalue()


def _boxes_table(items: list[ExportItem]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["filename", "width", "height", "class", "xmin", "ymin", "xmax", "ymax"])
    for item in items:
        size = [item.file_name, item.image.width, item.image.height]
        if not item.boxes:
            writer.writerow([*size, "", "", "", "", ""])
        for box in item.boxes:
            corners = (box.x_min, box.y_min, box.x_max, box.y_max)
            writer.writerow([*size, box.concept, *(number_text(v) for v in corners)])
    return buffer.getvalue()


FORMAT = register(
    ExportFormat(
        name="csv",
        title="CSV",
        tasks=("classification", "tagging", "detection"),
        write=write,
        layout="labels.csv (path,label(s),split) or <split>_labels.csv (filename,width,height,class,xmin,ymin,xmax,ymax) and images/",
        order=40,
    )
)
