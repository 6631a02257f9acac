"""Importers on real archives built from subsets of the shared datasets, with their real mess and some added."""

from __future__ import annotations

import csv
import json
import tempfile
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from visiontrain.data.importers import ArchiveError, Box, import_archive

YOLO_LABELLED = ["000000000009", "000000000025", "000000000030", "000000000034"]
YOLO_UNLABELLED = ["000000000250", "000000000508"]  # images without a label file in the shared data
YOLO_ORPHAN_LABELS = ["000000000656", "000000000659"]  # label files without an image in the shared data


def make_zip(path: Path, entries: dict[str, Path | bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            if isinstance(content, Path):
                archive.write(content, name)
            else:
                archive.writestr(name, content)
    return path


@pytest.fixture(autouse=True)
def _extract_into_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Archives are extracted into a temporary folder the caller owns: here, the test's."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))


def truncated_jpeg(source: Path) -> bytes:
    return source.read_bytes()[:3000]


# --- YOLO


@pytest.fixture(scope="module")
def coco128_yolo_zip(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A subset of coco128_yolo under a wrapper folder, with its real orphans on both sides and macOS clutter."""
    source = datasets_dir / "coco128_yolo"
    entries: dict[str, Path | bytes | str] = {"coco128/dataset.yaml": source / "dataset.yaml"}
    for stem in YOLO_LABELLED + YOLO_UNLABELLED:
        entries[f"coco128/images/train/{stem}.jpg"] = source / "images" / "train" / f"{stem}.jpg"
    for stem in YOLO_LABELLED + YOLO_ORPHAN_LABELS:
        entries[f"coco128/labels/train/{stem}.txt"] = source / "labels" / "train" / f"{stem}.txt"
    entries["__MACOSX/coco128/._dataset.yaml"] = b"\x00\x05\x16\x07"
    return make_zip(tmp_path_factory.mktemp("yolo") / "coco128.zip", entries)


def test_yolo_subset_keeps_the_real_mess_visible(coco128_yolo_zip: Path, datasets_dir: Path) -> None:
    dataset = import_archive(coco128_yolo_zip, task="detection")
    assert dataset.format == "yolo" and dataset.detected
    assert [image.name for image in dataset.images] == [f"images/train/{s}.jpg" for s in sorted(YOLO_LABELLED + YOLO_UNLABELLED)]
    assert dataset.rejected == [
        (f"labels/train/{stem}.txt", "label file without image (no image with the same name in the matching images folder)")
        for stem in YOLO_ORPHAN_LABELS
    ]
    no_label_warning = [w for w in dataset.warnings if "no label file" in w]
    assert len(no_label_warning) == 1 and all(stem in no_label_warning[0] for stem in YOLO_UNLABELLED)
    for stem in YOLO_UNLABELLED:  # YOLO convention: annotated, no objects
        assert dataset.boxes[f"images/train/{stem}.jpg"] == []
    label_dir = datasets_dir / "coco128_yolo" / "labels" / "train"
    for stem in YOLO_LABELLED:
        lines = [line for line in (label_dir / f"{stem}.txt").read_text().splitlines() if line.strip()]
        assert len(dataset.boxes[f"images/train/{stem}.jpg"]) == len(lines)
    assert dataset.split == {image.name: "train" for image in dataset.images}
    assert len(dataset.concepts) == 80 and dataset.concepts == sorted(dataset.concepts)
    assert dataset.skipped["system_files"] == 1
    assert dataset.extraction_dir is not None and dataset.images[0].path.is_relative_to(dataset.extraction_dir)


def test_yolo_whole_shared_folder_in_place(datasets_dir: Path) -> None:
    source = datasets_dir / "coco128_yolo"
    dataset = import_archive(source, task="detection")
    assert dataset.extraction_dir is None and dataset.images[0].path.is_relative_to(source)
    assert len(dataset.images) == 128 and len(dataset.boxes) == 128
    assert [name for name, _ in dataset.rejected] == [f"labels/train/{s}.txt" for s in YOLO_ORPHAN_LABELS]
    lines = {
        path.stem: sum(1 for line in path.read_text().splitlines() if line.strip())
        for path in (source / "labels" / "train").glob("*.txt")
    }
    assert sum(lines.values()) == 941  # the README's count
    expected = sum(count for stem, count in lines.items() if stem not in YOLO_ORPHAN_LABELS)
    assert sum(len(boxes) for boxes in dataset.boxes.values()) + dataset.skipped.get("degenerate_boxes", 0) == expected


def test_yolo_boxes_are_converted_to_pixels_of_the_image(coco128_yolo_zip: Path, datasets_dir: Path) -> None:
    dataset = import_archive(coco128_yolo_zip, format="yolo", task="detection")
    image = next(i for i in dataset.images if i.name == "images/train/000000000009.jpg")
    with Image.open(datasets_dir / "coco128_yolo" / "images" / "train" / "000000000009.jpg") as pil:
        assert (image.width, image.height) == pil.size == (640, 480)
    first_line = (datasets_dir / "coco128_yolo" / "labels" / "train" / "000000000009.txt").read_text().splitlines()[0]
    class_id, cx, cy, w, h = (float(v) for v in first_line.split())
    box = dataset.boxes[image.name][0]
    assert class_id == 45 and box.concept == "bowl"
    assert box.x_min == pytest.approx(max(0.0, (cx - w / 2) * 640))
    assert box.x_max == pytest.approx(min(640.0, (cx + w / 2) * 640))
    assert box.y_min == pytest.approx((cy - h / 2) * 480)
    assert box.y_max == pytest.approx(min(480.0, (cy + h / 2) * 480))


def test_yolo_for_tagging_gives_the_set_of_classes(coco128_yolo_zip: Path) -> None:
    dataset = import_archive(coco128_yolo_zip, task="tagging")
    assert dataset.tags["images/train/000000000009.jpg"] == ["bowl", "broccoli", "orange"]
    assert dataset.tags["images/train/000000000250.jpg"] == []
    assert dataset.boxes == {} and dataset.labels == {}


def test_yolo_bad_label_files_are_rejected_whole(datasets_dir: Path, tmp_path: Path) -> None:
    images = datasets_dir / "coco128_yolo" / "images" / "train"
    archive = make_zip(
        tmp_path / "bad.zip",
        {
            "classes.txt": "cat\ndog\n",
            "train/images/a.jpg": images / "000000000009.jpg",
            "train/images/b.jpg": images / "000000000025.jpg",
            "train/images/c.jpg": images / "000000000030.jpg",
            "valid/images/d.jpg": images / "000000000034.jpg",
            "valid/images/broken.jpg": truncated_jpeg(images / "000000000042.jpg"),
            "train/labels/a.txt": "0 0.5 0.5 0.2 0.2\n5 0.5 0.5 0.1 0.1\n",
            "train/labels/b.txt": "1 0.5 0.5 0.2 0.2\n0 0.5 0.5\n",
            "train/labels/c.txt": "1 120 80 30 40\n",
            "valid/labels/d.txt": "1 0.25 0.25 0.5 0.5\n0 0.9 0.9 0.0 0.2\n0 1.0 0.5 0.2 0.2\n",
        },
    )
    dataset = import_archive(archive, task="detection")
    assert dataset.format == "yolo" and dataset.concepts == ["cat", "dog"]
    reasons = dict(dataset.rejected)
    assert reasons["train/labels/a.txt"].startswith("bad line 2: unknown class id 5")
    assert reasons["train/labels/b.txt"].startswith("bad line 2: expected 5 values")
    assert reasons["train/labels/c.txt"].startswith("bad line 1: coordinates must be normalised")
    assert reasons["valid/images/broken.jpg"].startswith("corrupt or truncated image")
    # Images whose label file was refused stay in, unannotated (not "no objects").
    assert {i.name for i in dataset.images} == {"train/images/a.jpg", "train/images/b.jpg", "train/images/c.jpg", "valid/images/d.jpg"}
    assert list(dataset.boxes) == ["valid/images/d.jpg"]
    # The zero-width box is dropped; the one crossing the right edge is clipped to the image.
    dog, cat = dataset.boxes["valid/images/d.jpg"]
    width = next(image.width for image in dataset.images if image.name == "valid/images/d.jpg")
    assert (dog.concept, cat.concept) == ("dog", "cat")
    assert cat.x_max == width and cat.x_min == pytest.approx(0.9 * width)
    assert dataset.skipped["degenerate_boxes"] == 1
    assert dataset.split == {"train/images/a.jpg": "train", "train/images/b.jpg": "train", "train/images/c.jpg": "train", "valid/images/d.jpg": "val"}


# --- COCO


@pytest.fixture(scope="module")
def coco_subset(datasets_dir: Path) -> tuple[list[str], dict]:
    """The coco128 images with crowd annotations, the two without annotations, and one plain image."""
    content = json.loads((datasets_dir / "coco128_coco" / "annotations" / "instances.json").read_text())
    file_names = {image["id"]: image["file_name"] for image in content["images"]}
    crowd = {file_names[a["image_id"]] for a in content["annotations"] if a["iscrowd"]}
    chosen = sorted(crowd | {"000000000250.jpg", "000000000508.jpg", "000000000009.jpg"})
    return chosen, content


def test_coco_crowds_empty_images_and_missing_files(coco_subset: tuple[list[str], dict], datasets_dir: Path, tmp_path: Path) -> None:
    chosen, content = coco_subset
    source = datasets_dir / "coco128_coco"
    entries: dict[str, Path | bytes | str] = {"annotations/instances.json": source / "annotations" / "instances.json"}
    entries.update({f"images/{name}": source / "images" / name for name in chosen})
    dataset = import_archive(make_zip(tmp_path / "coco.zip", entries), task="detection")

    assert dataset.format == "coco"
    assert [image.name for image in dataset.images] == [f"images/{name}" for name in chosen]
    assert dataset.skipped["crowd_boxes"] == 10
    chosen_ids = {image["id"] for image in content["images"] if image["file_name"] in chosen}
    plain = [a for a in content["annotations"] if a["image_id"] in chosen_ids and not a["iscrowd"]]
    assert sum(len(boxes) for boxes in dataset.boxes.values()) == len(plain)
    assert dataset.boxes["images/000000000250.jpg"] == [] and dataset.boxes["images/000000000508.jpg"] == []
    # The full instances.json lists all 128 images: the ones not in this archive are reported, not lost.
    assert len(dataset.rejected) == 128 - len(chosen)
    assert all(reason == "listed in annotations/instances.json but not found in the archive" for _, reason in dataset.rejected)
    first = next(a for a in plain if a["image_id"] == 9)
    box = next(b for b in dataset.boxes["images/000000000009.jpg"] if b.x_min == pytest.approx(first["bbox"][0]))
    assert box.x_max == pytest.approx(first["bbox"][0] + first["bbox"][2])


def test_coco_tagging_matches_the_published_tags(coco_subset: tuple[list[str], dict], datasets_dir: Path, tmp_path: Path) -> None:
    chosen, content = coco_subset
    source = datasets_dir / "coco128_coco"
    ids = {image["id"] for image in content["images"] if image["file_name"] in chosen}
    subset = {**content, "images": [i for i in content["images"] if i["id"] in ids], "annotations": [a for a in content["annotations"] if a["image_id"] in ids]}
    entries: dict[str, Path | bytes | str] = {"train/_annotations.coco.json": json.dumps(subset)}
    entries.update({f"train/{name}": source / "images" / name for name in chosen})
    dataset = import_archive(make_zip(tmp_path / "coco.zip", entries), task="tagging")

    with open(source / "tags.csv", newline="") as handle:
        expected = {Path(row["image"]).name: sorted(filter(None, row["tags"].split(";"))) for row in csv.DictReader(handle)}
    assert dataset.rejected == []
    assert dataset.tags == {f"train/{name}": expected[name] for name in chosen}
    assert dataset.tags["train/000000000250.jpg"] == []  # explicit "without concept"
    assert set(dataset.split.values()) == {"train"}


# --- Pascal VOC and CSV boxes (raccoon)

RACCOONS = ["raccoon-1", "raccoon-2", "raccoon-10", "raccoon-119", "raccoon-72"]  # 119 has 3 boxes, 72 has 2


@pytest.fixture(scope="module")
def raccoon_zip(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = datasets_dir / "raccoon"
    entries: dict[str, Path | bytes | str] = {}
    for stem in RACCOONS:
        entries[f"images/{stem}.jpg"] = source / "images" / f"{stem}.jpg"
        entries[f"annotations/{stem}.xml"] = source / "annotations" / f"{stem}.xml"
    entries["annotations/raccoon-99.xml"] = source / "annotations" / "raccoon-99.xml"  # its image is left out
    entries["images/raccoon-98.jpg"] = source / "images" / "raccoon-98.jpg"  # its XML is left out
    entries["annotations/evil.xml"] = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><annotation>&x;</annotation>'
    for split in ("train", "test"):
        with open(source / f"{split}_labels.csv", newline="") as handle:
            rows = list(csv.reader(handle))
        kept = [rows[0]] + [row for row in rows[1:] if row[0].removesuffix(".jpg") in RACCOONS + ["raccoon-99"]]
        entries[f"{split}_labels.csv"] = "\n".join(",".join(row) for row in kept) + "\n"
    return make_zip(tmp_path_factory.mktemp("voc") / "raccoon.zip", entries)


def test_voc_boxes_match_the_xml_files(raccoon_zip: Path, datasets_dir: Path) -> None:
    dataset = import_archive(raccoon_zip, task="detection")
    assert dataset.format == "voc" and dataset.concepts == ["raccoon"]
    assert dict(dataset.rejected) == {
        "annotations/evil.xml": "XML with a DTD (<!DOCTYPE ...>) is not accepted",
        "annotations/raccoon-99.xml": "annotation without image (raccoon-99.jpg not found)",
    }
    assert "images/raccoon-98.jpg" not in dataset.boxes
    assert any("1 image(s) have no annotation" in w and "raccoon-98" in w for w in dataset.warnings)
    for stem in RACCOONS:
        root = ElementTree.parse(datasets_dir / "raccoon" / "annotations" / f"{stem}.xml").getroot()
        expected = [tuple(float(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")) for o in root.iter("object")]
        got = [(b.x_min, b.y_min, b.x_max, b.y_max) for b in dataset.boxes[f"images/{stem}.jpg"]]
        assert got == expected


def test_csv_box_layout_gives_the_same_boxes_and_the_split(raccoon_zip: Path) -> None:
    from_voc = import_archive(raccoon_zip, format="voc", task="detection")
    from_csv = import_archive(raccoon_zip, format="csv", task="detection")
    assert from_csv.boxes == from_voc.boxes and sum(map(len, from_csv.boxes.values())) == 8
    expected_split, missing_at = {}, []
    with zipfile.ZipFile(raccoon_zip) as archive:
        for split, file_name in (("train", "train_labels.csv"), ("test", "test_labels.csv")):  # test: held out
            for line, row in enumerate(csv.reader(archive.read(file_name).decode().splitlines()), start=1):
                if row[0] == "raccoon-99.jpg":
                    missing_at.append(f"listed in {file_name} line {line} but not found in the archive")
                elif line > 1:
                    expected_split[f"images/{row[0]}"] = split
    assert from_csv.rejected == [("raccoon-99.jpg", missing_at[0])]
    assert from_csv.split == expected_split and set(expected_split) == {f"images/{s}.jpg" for s in RACCOONS}


def test_a_format_that_cannot_feed_the_task_is_refused(raccoon_zip: Path) -> None:
    with pytest.raises(ArchiveError, match="Pascal VOC dataset, which cannot feed a classification view"):
        import_archive(raccoon_zip, task="classification")
    with pytest.raises(ArchiveError, match="cannot feed a detection view"):
        import_archive(raccoon_zip, format="imagefolder", task="detection")
    with pytest.raises(ArchiveError, match="unknown dataset format 'tfrecord'"):
        import_archive(raccoon_zip, format="tfrecord", task="detection")
    with pytest.raises(ArchiveError, match="unknown task"):
        import_archive(raccoon_zip, task="segmentation")


# --- ImageFolder and CSV labels (ants and bees)


def test_image_folder_with_splits_and_junk(ants_bees_small: Path, tmp_path: Path) -> None:
    entries: dict[str, Path | bytes | str] = {
        f"ants_bees/{path.relative_to(ants_bees_small).as_posix()}": path for path in sorted(ants_bees_small.rglob("*.jpg"))
    }
    some_bee = sorted((ants_bees_small / "train" / "bees").glob("*.jpg"))[0]
    entries["ants_bees/train/bees/broken.jpg"] = truncated_jpeg(some_bee)
    entries["ants_bees/train/ants/notes.txt"] = "collected in June"
    entries["ants_bees/train/ants/.DS_Store"] = b"\x00"
    dataset = import_archive(make_zip(tmp_path / "ab.zip", entries))

    assert dataset.format == "imagefolder" and dataset.task == "classification" and dataset.concepts == ["ants", "bees"]
    assert len(dataset.images) == 36 and len(dataset.labels) == 36
    assert dataset.labels["train/ants/" + sorted((ants_bees_small / "train" / "ants").glob("*.jpg"))[0].name] == "ants"
    assert sum(1 for split in dataset.split.values() if split == "val") == 12
    assert dict(dataset.rejected).keys() == {"train/bees/broken.jpg", "train/ants/notes.txt"}
    assert dict(dataset.rejected)["train/ants/notes.txt"] == "not an image (.txt) in class folder 'ants'"
    assert dataset.skipped == {"system_files": 1}

    tagged = import_archive(make_zip(tmp_path / "ab2.zip", entries), task="tagging")
    assert set(map(tuple, tagged.tags.values())) == {("ants",), ("bees",)}


def test_csv_labels_for_classification_and_tagging(ants_bees_small: Path, tmp_path: Path) -> None:
    ants = sorted((ants_bees_small / "train" / "ants").glob("*.jpg"))[:3]
    bees = sorted((ants_bees_small / "train" / "bees").glob("*.jpg"))[:3]
    entries: dict[str, Path | bytes | str] = {f"photos/{p.name}": p for p in ants + bees}
    rows = ["path,label,split"]
    rows += [f"photos/{p.name},ants,train" for p in ants[:2]] + [f"photos/{p.name},bees,val" for p in bees[:2]]
    rows += [f"photos/{ants[2].name},ants;bees,", f"photos/{bees[2].name},,", "photos/missing.jpg,ants,train"]
    entries["labels.csv"] = "\n".join(rows) + "\n"
    archive = make_zip(tmp_path / "csv.zip", entries)

    dataset = import_archive(archive)
    assert dataset.format == "csv"
    assert dataset.labels == {f"photos/{p.name}": "ants" for p in ants[:2]} | {f"photos/{p.name}": "bees" for p in bees[:2]}
    assert dataset.split == {f"photos/{p.name}": "train" for p in ants[:2]} | {f"photos/{p.name}": "val" for p in bees[:2]}
    reasons = dict(dataset.rejected)
    assert reasons["photos/missing.jpg"] == "listed in labels.csv line 8 but not found in the archive"
    assert reasons[f"photos/{ants[2].name}"].startswith("labelled ants, bees")
    # An empty label is refused by line (the image itself is imported, unannotated).
    assert reasons[f"photos/{bees[2].name}"].startswith("labels.csv line 7 has no label")
    assert f"photos/{bees[2].name}" in {image.name for image in dataset.images} - set(dataset.labels)

    tagged = import_archive(archive, task="tagging")
    assert tagged.tags[f"photos/{ants[2].name}"] == ["ants", "bees"]
    assert tagged.tags[f"photos/{bees[2].name}"] == []  # explicit "without concept"
    assert len(tagged.tags) == 6

    with pytest.raises(ArchiveError, match="a detection view needs filename,class,xmin"):
        import_archive(archive, task="detection")


def test_unsafe_archive_is_refused_and_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    archive = make_zip(tmp_path / "evil.zip", {"a/b.jpg": b"x", "../../evil.jpg": b"x"})
    with pytest.raises(ArchiveError, match="outside the archive"):
        import_archive(archive, task="classification")
    assert list(scratch.iterdir()) == []


def test_unrecognised_layout_says_what_was_expected(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "notes.zip", {"readme.md": "# nothing here", "data.json": "{}"})
    with pytest.raises(ArchiveError, match="cannot recognise the dataset layout"):
        import_archive(archive)


def test_boxes_use_the_exif_oriented_image(datasets_dir: Path, tmp_path: Path) -> None:
    """A phone photo stored landscape with 'rotate 90°' in EXIF is shown, and trained on, in portrait."""
    with Image.open(datasets_dir / "coco128_yolo" / "images" / "train" / "000000000009.jpg") as photo:
        exif = Image.Exif()
        exif[0x0112] = 6
        photo.save(tmp_path / "rotated.jpg", exif=exif)  # stored 640x480, displayed 480x640
    content = {
        "images": [{"id": 1, "file_name": "rotated.jpg", "width": 640, "height": 480}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [400, 300, 200, 400], "iscrowd": 0}],
        "categories": [{"id": 1, "name": "bowl"}],
    }
    yolo = import_archive(
        make_zip(tmp_path / "y.zip", {"classes.txt": "bowl\n", "images/r.jpg": tmp_path / "rotated.jpg", "labels/r.txt": "0 0.5 0.5 0.5 0.25\n"}),
        task="detection",
    )
    image = yolo.images[0]
    assert (image.width, image.height) == (480, 640)
    assert yolo.boxes["images/r.jpg"] == [Box("bowl", 120.0, 240.0, 360.0, 400.0)]

    coco = import_archive(
        make_zip(tmp_path / "c.zip", {"instances.json": json.dumps(content), "images/rotated.jpg": tmp_path / "rotated.jpg"}),
        task="detection",
    )
    # The annotation's 640x480 frame does not match what is displayed: clipped to 480x640, and said so.
    assert coco.boxes["images/rotated.jpg"] == [Box("bowl", 400.0, 300.0, 480.0, 640.0)]
    assert any("differ in size" in w and "640x480 declared, 480x640 on file" in w for w in coco.warnings)


# --- one set of rules with the CLI, and hostile parsing


def test_a_train_folder_beside_class_folders_is_refused(ants_bees_small: Path, tmp_path: Path) -> None:
    ants = sorted((ants_bees_small / "train" / "ants").glob("*.jpg"))[:2]
    bees = sorted((ants_bees_small / "train" / "bees").glob("*.jpg"))[:2]
    entries: dict[str, Path | bytes | str] = {f"train/ants/{p.name}": p for p in ants}
    entries.update({f"bees/{p.name}": p for p in bees})
    with pytest.raises(ArchiveError, match=r"mixes split folders \(train/\) with other folders of images \(bees/\)"):
        import_archive(make_zip(tmp_path / "mixed.zip", entries))


def test_test_folder_is_its_own_split_and_tiny_images_are_refused_by_the_shared_check(
    ants_bees_small: Path, tmp_path: Path
) -> None:
    from visiontrain.data.checks import MIN_IMAGE_SIDE

    ants = sorted((ants_bees_small / "train" / "ants").glob("*.jpg"))[:3]
    dot = tmp_path / "dot.png"
    Image.new("RGB", (4, 4), "white").save(dot)
    entries: dict[str, Path | bytes | str] = {
        f"train/ants/{ants[0].name}": ants[0],
        f"val/ants/{ants[1].name}": ants[1],
        f"test/ants/{ants[2].name}": ants[2],
        "train/ants/dot.png": dot,
    }
    dataset = import_archive(make_zip(tmp_path / "splits.zip", entries))
    assert dataset.split == {
        f"train/ants/{ants[0].name}": "train", f"val/ants/{ants[1].name}": "val", f"test/ants/{ants[2].name}": "test"
    }
    assert dataset.rejected == [
        ("train/ants/dot.png", f"image is only 4x4 pixels; at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} are needed")
    ]


def test_symlinked_images_in_a_folder_are_read(ants_bees_small: Path, tmp_path: Path) -> None:
    import os

    root = tmp_path / "ds"
    (root / "ants").mkdir(parents=True)
    ants = sorted((ants_bees_small / "train" / "ants").glob("*.jpg"))[:2]
    os.symlink(ants[0], root / "ants" / "a.jpg")
    os.symlink(ants_bees_small / "train" / "bees", root / "bees")
    dataset = import_archive(root)
    assert dataset.labels["ants/a.jpg"] == "ants" and sum(1 for c in dataset.labels.values() if c == "bees") == 12


def yolo_entries(datasets_dir: Path, yaml_text: str) -> dict[str, Path | bytes | str]:
    source = datasets_dir / "coco128_yolo"
    stem = YOLO_LABELLED[0]
    return {
        "data.yaml": yaml_text,
        f"images/train/{stem}.jpg": source / "images" / "train" / f"{stem}.jpg",
        f"labels/train/{stem}.txt": source / "labels" / "train" / f"{stem}.txt",
    }


def test_yolo_yaml_aliases_are_refused_before_they_expand(datasets_dir: Path, tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 7)]
    lines.append("names: *a6")  # 10**7 strings once expanded (tenfold per line), from a file under 1 KB
    yaml_text = "\n".join(lines)
    assert len(yaml_text) < 1024
    archive = make_zip(tmp_path / "laughs.zip", yolo_entries(datasets_dir, yaml_text))
    with pytest.raises(ArchiveError, match=r"data\.yaml: line 1: YAML anchors and aliases .* are not accepted"):
        import_archive(archive, task="detection")
    plain = make_zip(tmp_path / "plain.zip", yolo_entries(datasets_dir, "names:\n" + "".join(f"  - c{i}\n" for i in range(80))))
    assert import_archive(plain, task="tagging").format == "yolo"


def voc_xml(image_name: str, concept: str = "raccoon") -> str:
    return (
        f"<annotation><filename>{image_name}</filename><size><width>0</width><height>0</height></size>"
        f"<object><name>{concept}</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>20</xmax><ymax>20</ymax>"
        "</bndbox></object></annotation>"
    )


def test_voc_xml_in_utf16_is_read_and_its_dtd_refused(datasets_dir: Path, tmp_path: Path) -> None:
    images = sorted((datasets_dir / "raccoon" / "images").glob("*.jpg"))[:3]
    dtd = (
        '<?xml version="1.0" encoding="UTF-16"?>\n<!DOCTYPE annotation [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>\n'
        + voc_xml(images[2].name, "&lol2;")
    )
    entries: dict[str, Path | bytes | str] = {f"images/{p.name}": p for p in images}
    entries["annotations/a.xml"] = voc_xml(images[0].name)
    entries["annotations/b.xml"] = ('<?xml version="1.0" encoding="UTF-16"?>' + voc_xml(images[1].name)).encode("utf-16")
    entries["annotations/c.xml"] = dtd.encode("utf-16")
    dataset = import_archive(make_zip(tmp_path / "voc16.zip", entries), task="tagging")
    assert dataset.format == "voc"
    assert dataset.tags == {f"images/{images[0].name}": ["raccoon"], f"images/{images[1].name}": ["raccoon"]}
    assert ("annotations/c.xml", "XML with a DTD (<!DOCTYPE ...>) is not accepted") in dataset.rejected


def test_coco_json_nested_100000_deep_is_a_clear_error(datasets_dir: Path, tmp_path: Path) -> None:
    image = sorted((datasets_dir / "coco128_coco" / "images").glob("*.jpg"))[0]
    deep = '{"images": ' + "[" * 100_000 + "]" * 100_000 + ', "annotations": [], "categories": []}'
    archive = make_zip(tmp_path / "deep.zip", {f"images/{image.name}": image, "annotations/instances.json": deep})
    with pytest.raises(ArchiveError, match=r"annotations/instances\.json: JSON nested too deeply"):
        import_archive(archive, task="tagging")
    # A category name that is not text is refused with a short preview, however it is nested.
    odd = {"images": [], "annotations": [], "categories": [{"id": 1, "name": [[[[["cat"]]]]]}]}
    archive = make_zip(tmp_path / "odd.zip", {f"images/{image.name}": image, "instances.json": json.dumps(odd)})
    with pytest.raises(ArchiveError, match=r"instances\.json: every category needs an 'id' and a 'name' \(found \{"):
        import_archive(archive, task="tagging")


def test_import_errors_name_the_upload_not_the_servers_temporary_file(tmp_path: Path) -> None:
    upload = tmp_path / "tmp8f3k2j1q.zip"  # how the server keeps an upload
    upload.write_bytes(b"this is not a zip")
    with pytest.raises(ArchiveError) as caught:
        import_archive(upload, display_name="holiday photos.zip")
    assert str(caught.value) == "holiday photos.zip is not a zip archive"
    archive = make_zip(tmp_path / "tmpq1w2e3r4.zip", {"notes/readme.txt": "no images"})
    with pytest.raises(ArchiveError) as caught:
        import_archive(archive, display_name="holiday photos.zip")
    assert "tmp" not in str(caught.value) and str(tmp_path) not in str(caught.value)
