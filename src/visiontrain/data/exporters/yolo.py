"""YOLO (Ultralytics) detection: ``data.yaml``, ``images/<split>/`` and ``labels/<split>/``.

- ``data.yaml``: ``names`` (class id to concept, ids 0.. in concept order), ``nc``, and ``train``,
  ``val``, ``test`` for each split present (folders relative to the file, as Ultralytics reads them);
- ``images/<split>/<file>`` and ``labels/<split>/<stem>.txt``, one line ``class cx cy w h`` per box,
  normalised to the image's width and height and written with every digit of the float (the shortest
  text that reads back as the same number), so that boxes come back the same to far below a pixel;
- an image without objects gets an EMPTY label file: annotated, no object (rather than a missing
  file, which YOLO tools take the same way but which also looks like a forgotten annotation);
- images without a split go to ``images/`` and ``labels/`` themselves (read back without a split;
  ``train: images`` in ``data.yaml`` when no image has a split).
"""

from __future__ import annotations

import yaml

from visiontrain.data.exporters.base import (
    SPLITS,
    ExportError,
    ExportFormat,
    ExportItem,
    Sink,
    folder_of,
    register,
)


def write(items: list[ExportItem], concepts: list[str], task: str, sink: Sink) -> dict[str, str]:
    if not concepts:
        raise ExportError("a YOLO dataset needs at least one class name: the dataset has no concept")
    class_ids = {concept: index for index, concept in enumerate(concepts)}
    paths: dict[str, str] = {}
    for item in items:
        width, height = item.image.width, item.image.height
        if width <= 0 or height <= 0:
            raise ExportError(f"{item.image.name}: no image size ({width}x{height}) to normalise its boxes by")
        lines = []
        for box in item.boxes:
            values = (
                (box.x_min + box.x_max) / 2 / width,
                (box.y_min + box.y_max) / 2 / height,
                (box.x_max - box.x_min) / width,
                (box.y_max - box.y_min) / height,
            )
            lines.append(" ".join([str(class_ids[box.concept]), *(repr(float(v)) for v in values)]))
        path = f"{folder_of(item, 'images')}/{item.file_name}"
        sink.write_file(path, item.image.path)
        sink.write_text(f"{folder_of(item, 'labels')}/{item.stem}.txt", "".join(line + "\n" for line in lines))
        paths[item.image.name] = path
    config: dict[str, object] = {}
    present = [split for split in SPLITS if any(item.split == split for item in items)]
    for split in present:
        config[split] = f"images/{split}"
    if not present:
        config["train"] = "images"
    config["nc"] = len(concepts)
    config["names"] = {index: concept for concept, index in class_ids.items()}
    sink.write_text("data.yaml", yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
    return paths


FORMAT = register(
    ExportFormat(
        name="yolo",
        title="YOLO",
        tasks=("detection",),
        write=write,
        layout="data.yaml (names), images/<split>/ and labels/<split>/ (class cx cy w h, normalised; empty file: no object)",
        order=20,
    )
)
