"""Classification datasets built from the shared detection data, so defaults are checked on more
than one real dataset (``benchmarks/quality.py``). Each is an ImageFolder tree with ``train/`` and
``val/``, split by a seeded shuffle per class; built once into ``--work`` and reused.

* ``ants_bees``: the shared photos as they are (245 train / 153 validation, 2 classes).
* ``coco_objects``: crops of COCO128's boxes (10% margin, shorter side >= 32 px, no crowd boxes)
  labelled by COCO's supercategory (person, animal, food, kitchen, furniture, vehicle, ...), the
  supercategories with at least 30 crops, person capped at 90 so it does not swamp the rest:
  everyday objects, small and blurry crops, 8 classes.
* ``raccoon_or_not``: crops of the raccoon boxes against crops of the same photos' background
  (same sizes, no overlap with any raccoon box): 2 classes, where the context is the same.
"""

from __future__ import annotations

import csv
import json
import random
from collections import defaultdict
from pathlib import Path

from PIL import Image

VAL_FRACTION = 0.4
SEED = 7


def _write_split(crops: dict[str, list[Image.Image]], root: Path) -> Path:
    rng = random.Random(SEED)
    for label, images in crops.items():
        order = list(range(len(images)))
        rng.shuffle(order)
        n_val = max(1, round(len(images) * VAL_FRACTION))
        for rank, index in enumerate(order):
            side = "val" if rank < n_val else "train"
            out = root / side / label.replace(" ", "_")
            out.mkdir(parents=True, exist_ok=True)
            images[index].convert("RGB").save(out / f"{index:04d}.jpg", quality=92)
    (root / "BUILT").write_text("ok")
    return root


def _margin_box(x: float, y: float, w: float, h: float, width: int, height: int, margin: float = 0.1) -> tuple[int, int, int, int]:
    dx, dy = w * margin, h * margin
    return (max(0, int(x - dx)), max(0, int(y - dy)), min(width, int(x + w + dx)), min(height, int(y + h + dy)))


def coco_objects(shared: Path, work: Path) -> Path:
    root = work / "coco_objects"
    if (root / "BUILT").exists():
        return root
    source = shared / "coco128_coco"
    index = json.loads((source / "annotations" / "instances.json").read_text())
    supercategory = {c["id"]: c["supercategory"] for c in index["categories"]}
    files = {i["id"]: i["file_name"] for i in index["images"]}
    by_class: dict[str, list[tuple[int, list[float]]]] = defaultdict(list)
    for annotation in index["annotations"]:
        x, y, w, h = annotation["bbox"]
        if annotation.get("iscrowd") or min(w, h) < 32:
            continue
        by_class[supercategory[annotation["category_id"]]].append((annotation["image_id"], annotation["bbox"]))
    crops: dict[str, list[Image.Image]] = {}
    for label, boxes in sorted(by_class.items()):
        if len(boxes) < 30:
            continue
        random.Random(SEED).shuffle(boxes)
        crops[label] = []
        for image_id, (x, y, w, h) in boxes[:90]:
            with Image.open(source / "images" / files[image_id]) as image:
                crops[label].append(image.convert("RGB").crop(_margin_box(x, y, w, h, *image.size)))
    return _write_split(crops, root)


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def raccoon_or_not(shared: Path, work: Path) -> Path:
    root = work / "raccoon_or_not"
    if (root / "BUILT").exists():
        return root
    source = shared / "raccoon"
    boxes: dict[str, list[tuple[int, int, int, int]]] = defaultdict(list)
    for name in ("train_labels.csv", "test_labels.csv"):
        with open(source / name, newline="") as handle:
            for row in csv.DictReader(handle):
                boxes[row["filename"]].append(tuple(int(float(row[k])) for k in ("xmin", "ymin", "xmax", "ymax")))
    rng = random.Random(SEED)
    crops: dict[str, list[Image.Image]] = {"raccoon": [], "background": []}
    for filename, found in sorted(boxes.items()):
        with Image.open(source / "images" / filename) as opened:
            image = opened.convert("RGB")
        width, height = image.size
        for box in found:
            crops["raccoon"].append(image.crop(_margin_box(box[0], box[1], box[2] - box[0], box[3] - box[1], width, height)))
            # A background crop of a similar size somewhere that touches no raccoon (skipped when none fits).
            for _ in range(50):
                w = max(32, min(width, int((box[2] - box[0]) * rng.uniform(0.5, 1.0))))
                h = max(32, min(height, int((box[3] - box[1]) * rng.uniform(0.5, 1.0))))
                x, y = rng.randint(0, width - w), rng.randint(0, height - h)
                candidate = (x, y, x + w, y + h)
                if not any(_overlaps(candidate, other) for other in found):
                    crops["background"].append(image.crop(candidate))
                    break
    return _write_split(crops, root)


def ants_bees(shared: Path, work: Path) -> Path:
    return shared / "ants_bees"


BUILDERS = {"ants_bees": ants_bees, "coco_objects": coco_objects, "raccoon_or_not": raccoon_or_not}


def build(name: str, shared: Path, work: Path) -> Path:
    return BUILDERS[name](shared, work)


if __name__ == "__main__":
    import sys

    shared, work = Path(sys.argv[1]), Path(sys.argv[2])
    for dataset in BUILDERS:
        root = build(dataset, shared, work)
        counts = {side: {d.name: len(list(d.iterdir())) for d in sorted((root / side).iterdir()) if d.is_dir()}
                  for side in ("train", "val")}
        print(dataset, json.dumps(counts))
