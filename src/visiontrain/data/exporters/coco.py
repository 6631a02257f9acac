"""COCO object detection, laid out as COCO 2017 is distributed and as our COCO importer reads it back.

- ``annotations/instances_<split>.json`` for each split present (``train``, ``val``, ``test``) and
  ``annotations/instances.json`` for images without a split; each a complete COCO file with
  ``images`` (``file_name``, ``width``, ``height``), ``annotations`` (``bbox`` as [x, y, width, height]
  in pixels, ``area``, ``iscrowd: 0``) and ``categories`` (every concept, ids 1.. in concept order, the
  same in every file);
- ``images/<split>/<file>`` (``images/<file>`` without a split). File names are unique over the whole
  export, so ``file_name`` is the bare name (relative to the split's image folder, as in COCO 2017).

An image without objects is listed with no annotation: COCO's "exhaustively annotated, nothing here".
Coordinates are written as the floats they are (JSON keeps every digit).
"""

from __future__ import annotations

import json

from visiontrain.data.exporters.base import SPLITS, ExportFormat, ExportItem, Sink, folder_of, register


def write(items: list[ExportItem], concepts: list[str], task: str, sink: Sink) -> dict[str, str]:
    category_ids = {concept: index for index, concept in enumerate(concepts, start=1)}
    categories = [{"id": category_ids[c], "name": c, "supercategory": ""} for c in concepts]
    paths: dict[str, str] = {}
    image_id = annotation_id = 0
    for split in (*SPLITS, None):
        chosen = [item for item in items if item.split == split]
        if not chosen:
            continue
        images, annotations = [], []
        for item in chosen:
            image_id += 1
            path = f"{folder_of(item, 'images')}/{item.file_name}"
            sink.write_file(path, item.image.path)
            paths[item.image.name] = path
            images.append(
                {"id": image_id, "file_name": item.file_name, "width": item.image.width, "height": item.image.height}
            )
            for box in item.boxes:
                annotation_id += 1
                width, height = box.x_max - box.x_min, box.y_max - box.y_min
                annotations.append(
                    {
                        "id": annotation_id,
                        "image_id": image_id,
                        "category_id": category_ids[box.concept],
                        "bbox": [box.x_min, box.y_min, width, height],
                        "area": width * height,
                        "iscrowd": 0,
                        "segmentation": [],
                    }
                )
        content = {
            "info": {"description": "exported by visiontrain", "version": "1.0"},
            "licenses": [],
            "images": images,
            "annotations": annotations,
            "categories": categories,
        }
        json_name = f"annotations/instances_{split}.json" if split else "annotations/instances.json"
        sink.write_text(json_name, json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")) + "\n")
    return paths


FORMAT = register(
    ExportFormat(
        name="coco",
        title="COCO",
        tasks=("detection",),
        write=write,
        layout="annotations/instances_<split>.json (COCO JSON, bbox [x, y, w, h] in pixels) and images/<split>/",
        order=10,
    )
)
