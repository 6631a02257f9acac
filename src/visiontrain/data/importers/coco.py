"""COCO object-detection JSON: ``images``, ``annotations`` (``bbox`` as x, y, width, height) and ``categories``.

An image listed in the JSON is exhaustively annotated: one without annotations has no object (and,
for tagging, no concept). Segmentation polygons are not imported; their ``bbox`` is. Crowd regions
(``iscrowd: 1``) mark a group rather than one object: no box, but the concept is a tag.
Several JSON files (``instances_train.json``, ``instances_val.json``) are read together, their split
taken from the file or folder name.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from pathlib import PurePosixPath

from visiontrain.data.archives import ArchiveError
from visiontrain.data.importers.base import DatasetFormat, ImportedDataset, register
from visiontrain.data.importers.builder import DatasetBuilder
from visiontrain.data.importers.folder import SPLIT_FOLDERS, DatasetFolder, join, parent_of

_MAX_JSON_BYTES = 2 * 1024**3
# Short previews of a bad record in messages; depth-limited, so a hostile record cannot recurse.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxstring, _PREVIEW.maxother, _PREVIEW.maxdict, _PREVIEW.maxlist = 2, 40, 40, 4, 4


def matches(folder: DatasetFolder) -> bool:
    return bool(_coco_files(folder))


def load(folder: DatasetFolder, task: str) -> ImportedDataset:
    files = _coco_files(folder)
    if not files:
        raise ArchiveError(
            "no COCO annotation file found: expected a .json file with 'images', 'annotations' and 'categories'"
        )
    builder = DatasetBuilder(folder, "coco", task)
    for json_name, content in files.items():
        builder.mark_read(json_name)
        _read_coco(folder, builder, json_name, content)
    return builder.build()


def _read_coco(folder: DatasetFolder, builder: DatasetBuilder, json_name: str, content: dict) -> None:
    json_folder = parent_of(json_name)
    # The JSON's own folder (Roboflow), images/ beside the annotations/ folder, or images/ at the root.
    bases = [base for base in (json_folder, join(parent_of(json_folder), "images"), "images") if base]
    split = _split_from_file_name(json_name)

    categories: dict[object, str] = {}
    for category in _records(content, "categories", json_name):
        if not isinstance(category.get("id"), int | str) or not _text(category.get("name")):
            raise ArchiveError(
                f"{json_name}: every category needs an 'id' and a 'name' (found {_PREVIEW.repr(category)})"
            )
        categories[category["id"]] = _text(category["name"])
    builder.declare_concepts(set(categories.values()))

    images: dict[object, str] = {}
    listed_ids: set[object] = set()
    for record in _records(content, "images", json_name):
        if not isinstance(record.get("id"), int | str):
            raise ArchiveError(
                f"{json_name}: every image needs an integer or text 'id' (found {_PREVIEW.repr(record)})"
            )
        listed_ids.add(record["id"])
        file_name = _text(record.get("file_name"))
        name = folder.find_image(file_name, *bases)
        if name is None:
            where = file_name or f"{json_name} image {record['id']}"
            builder.reject(where, f"listed in {json_name} but not found in the archive")
            continue
        if not builder.has_image(name):
            continue  # rejected with its own reason
        images[record.get("id")] = name
        builder.mark_annotated(name)
        builder.check_declared_size(name, _int(record.get("width")), _int(record.get("height")))
        if split:
            builder.set_split(name, split)

    for annotation in _records(content, "annotations", json_name):
        where = f"{json_name} annotation {_PREVIEW.repr(annotation.get('id'))}"
        image_id = annotation.get("image_id")
        if not isinstance(image_id, int | str) or image_id not in images:
            if not isinstance(image_id, int | str) or image_id not in listed_ids:
                builder.reject(where, f"refers to image id {_PREVIEW.repr(image_id)}, which is not listed in 'images'")
            continue  # otherwise its image is missing or rejected, and reported as such
        category_id = annotation.get("category_id")
        concept = categories.get(category_id) if isinstance(category_id, int | str) else None
        if concept is None:
            builder.reject(where, f"unknown category id {_PREVIEW.repr(category_id)}")
            continue
        corners = _corners(annotation)
        if corners is None:
            builder.reject(where, "no usable 'bbox' (expected [x, y, width, height]) and no polygon to derive it from")
            continue
        builder.add_object(images[image_id], concept, *corners, crowd=bool(annotation.get("iscrowd", 0)))


def _corners(annotation: dict) -> tuple[float, float, float, float] | None:
    bbox = annotation.get("bbox")
    if _numbers(bbox, 4):
        x, y, width, height = (float(v) for v in bbox)
        return x, y, x + width, y + height
    polygons = annotation.get("segmentation")
    if isinstance(polygons, list) and polygons and all(_numbers(p) and len(p) >= 6 for p in polygons):
        xs = [float(v) for polygon in polygons for v in polygon[0::2]]
        ys = [float(v) for polygon in polygons for v in polygon[1::2]]
        return min(xs), min(ys), max(xs), max(ys)
    return None


def _text(value: object) -> str:
    """A name or file name: text (or a number) only, stripped; '' for anything else."""
    if isinstance(value, str | int) and not isinstance(value, bool):
        return str(value).strip()
    return ""


def _numbers(values: object, count: int | None = None) -> bool:
    return (
        isinstance(values, list)
        and (count is None or len(values) == count)
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values)
    )


def _records(content: dict, key: str, json_name: str) -> list[dict]:
    records = content[key]
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ArchiveError(f"{json_name}: '{key}' must be a list of objects")
    return records


def _coco_files(folder: DatasetFolder) -> dict[str, dict]:
    """The JSON files shaped like COCO, parsed once per folder."""
    if "coco" not in folder.parsed:
        found: dict[str, dict] = {}
        for name in folder.with_suffix(".json"):
            path = folder.files[name]
            if path.stat().st_size > _MAX_JSON_BYTES:
                raise ArchiveError(f"{name} is larger than {_MAX_JSON_BYTES // 1024**3} GB; split the annotations")
            try:
                content = json.loads(path.read_bytes())
            except RecursionError:
                # The parser's own depth guard (a clean error, not a crash): COCO needs about 5 levels.
                raise ArchiveError(
                    f"{name}: JSON nested too deeply (hundreds of levels of [ or {{); COCO annotations need a few"
                ) from None
            except (ValueError, UnicodeDecodeError):
                continue  # not JSON: reported as an ignored file
            if isinstance(content, dict) and {"images", "annotations", "categories"} <= content.keys():
                found[name] = content
        folder.parsed["coco"] = found
    return folder.parsed["coco"]  # type: ignore[return-value]


def _split_from_file_name(json_name: str) -> str | None:
    """instances_train2017.json -> train, valid/_annotations.coco.json -> val (the folder says it)."""
    path = PurePosixPath(json_name)
    for word in re.split(r"[^a-z0-9]+", path.stem.lower()):
        split = SPLIT_FOLDERS.get(word.rstrip("0123456789"))
        if split:
            return split
    for part in reversed(path.parts[:-1]):
        if part.lower() in SPLIT_FOLDERS:
            return SPLIT_FOLDERS[part.lower()]
    return None


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) else 0


FORMAT = register(
    DatasetFormat(
        name="coco",
        title="COCO",
        tasks=("detection", "tagging"),
        detect_priority=10,
        matches=matches,
        load=load,
    )
)
