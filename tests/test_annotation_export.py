"""Exporting annotations (COCO, YOLO, Pascal VOC, CSV) and reading them back: the same images, boxes,
concepts and splits, images without objects included; VOC's ImageSets lists as distributed; file names
made safe and unique; `visiontrain convert`.

Real data: small copies of the shared raccoon (VOC), coco128 (COCO JSON) and coco128 (YOLO) datasets.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ElementTree
import zipfile
from pathlib import Path, PurePosixPath

import pytest
import yaml
from typer.testing import CliRunner

from visiontrain.cli.main import app
from visiontrain.data.exporters import ExportError, export_dataset, safe_file_name
from visiontrain.data.importers import ImportedDataset, ImportedImage, import_archive
from visiontrain.data.importers.base import Box

RACCOONS = [f"raccoon-{i}" for i in (1, 2, 3, 4, 5, 6, 7, 8, 119, 72)]  # 119 has 3 boxes, 72 has 2
COCO_IMAGES = [
    "000000000009.jpg", "000000000025.jpg", "000000000030.jpg", "000000000034.jpg", "000000000036.jpg",
    "000000000042.jpg", "000000000149.jpg",  # 149 has a crowd region
    "000000000250.jpg",  # listed without annotations: no object
]
COCO_VAL = {"000000000042.jpg", "000000000149.jpg"}
YOLO_TRAIN = ["000000000009", "000000000025", "000000000030", "000000000034", "000000000036"]
YOLO_VAL = ["000000000042", "000000000049"]
TOLERANCE = 1e-6  # px: COCO and VOC keep floats whole; YOLO's normalised floats too (every digit written)
runner = CliRunner()


# --- the datasets


def _empty_voc_xml(image_name: str, width: int, height: int) -> str:
    return (
        f"<annotation><filename>{image_name}</filename><size><width>{width}</width><height>{height}</height>"
        "<depth>3</depth></size></annotation>"
    )


@pytest.fixture
def voc_dir(datasets_dir: Path, tmp_path: Path) -> Path:
    """Raccoons as VOC is distributed, with an image without objects and one without annotation."""
    source, root = datasets_dir / "raccoon", tmp_path / "voc"
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True)
    for stem in RACCOONS:
        shutil.copy(source / "images" / f"{stem}.jpg", root / "JPEGImages")
        shutil.copy(source / "annotations" / f"{stem}.xml", root / "Annotations")
    shutil.copy(datasets_dir / "coco128_coco" / "images" / "000000000009.jpg", root / "JPEGImages" / "street.jpg")
    (root / "Annotations" / "street.xml").write_text(_empty_voc_xml("street.jpg", 640, 480))
    shutil.copy(source / "images" / "raccoon-98.jpg", root / "JPEGImages")  # no XML: unannotated
    lists = {"train": RACCOONS[:6] + ["street"], "val": RACCOONS[6:8], "test": RACCOONS[8:]}
    lists["trainval"] = lists["train"] + lists["val"]
    for name, stems in lists.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(s + "\n" for s in stems))
    return root


@pytest.fixture
def coco_dir(datasets_dir: Path, tmp_path: Path) -> Path:
    """coco128 images with instances_train.json and instances_val.json (polygons, a crowd region, 80 categories)."""
    source, root = datasets_dir / "coco128_coco", tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    (root / "annotations").mkdir()
    full = json.loads((source / "annotations" / "instances.json").read_text())
    for file_name in COCO_IMAGES:
        shutil.copy(source / "images" / file_name, root / "images")
    shutil.copy(source / "images" / "000000000508.jpg", root / "images")  # in no JSON: unannotated
    for split, chosen in (("train", set(COCO_IMAGES) - COCO_VAL), ("val", COCO_VAL)):
        images = [image for image in full["images"] if image["file_name"] in chosen]
        ids = {image["id"] for image in images}
        content = {**full, "images": images, "annotations": [a for a in full["annotations"] if a["image_id"] in ids]}
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(content))
    return root


@pytest.fixture
def yolo_dir(datasets_dir: Path, tmp_path: Path) -> Path:
    """coco128 in Ultralytics' layout with train and val, an empty label file and an image without one."""
    source, root = datasets_dir / "coco128_yolo", tmp_path / "yolo"
    for split, stems in (("train", YOLO_TRAIN), ("val", YOLO_VAL)):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for stem in stems:
            shutil.copy(source / "images" / "train" / f"{stem}.jpg", root / "images" / split)
            shutil.copy(source / "labels" / "train" / f"{stem}.txt", root / "labels" / split)
    shutil.copy(source / "images" / "train" / "000000000061.jpg", root / "images" / "train")
    (root / "labels" / "train" / "000000000061.txt").write_text("")  # annotated: no object
    shutil.copy(source / "images" / "train" / "000000000250.jpg", root / "images" / "val")  # no label file
    names = yaml.safe_load((source / "dataset.yaml").read_text())["names"]
    (root / "data.yaml").write_text(yaml.safe_dump({"train": "images/train", "val": "images/val", "names": names}))
    return root


SOURCES = {"voc": "voc_dir", "coco": "coco_dir", "yolo": "yolo_dir"}


@pytest.fixture(params=list(SOURCES))
def source(request: pytest.FixtureRequest) -> tuple[str, ImportedDataset]:
    dataset = import_archive(request.getfixturevalue(SOURCES[request.param]), task="detection")
    assert dataset.format == request.param
    return request.param, dataset


# --- checks


def assert_same_annotations(original: ImportedDataset, files: dict[str, str], back: ImportedDataset, *, all_concepts: bool) -> None:
    """``back`` (read from an export) holds ``original``'s annotated images under the names in ``files``,
    with the same boxes in the same order (within TOLERANCE px), concepts and splits."""
    annotated = original.annotated
    assert set(files) == annotated
    assert len(set(files.values())) == len(files)
    assert back.annotated == {files[name] for name in annotated} == {image.name for image in back.images}
    assert not back.rejected
    for name in annotated:
        assert PurePosixPath(files[name]).name == PurePosixPath(name).name  # no clash here: names kept
        expected, got = original.boxes[name], back.boxes[files[name]]
        assert [b.concept for b in got] == [b.concept for b in expected], name
        for a, b in zip(expected, got, strict=True):
            difference = max(abs(x - y) for x, y in zip(_corners(a), _corners(b), strict=True))
            assert difference <= TOLERANCE, (name, a, b)
    assert back.split == {files[name]: side for name, side in original.split.items() if name in annotated}
    used = {box.concept for boxes in original.boxes.values() for box in boxes}
    if all_concepts:
        assert back.concepts == original.concepts
    else:  # VOC and CSV files name only the concepts their boxes use
        assert set(back.concepts) == used
    sizes = {image.name: (image.width, image.height) for image in original.images}
    assert {image.name: (image.width, image.height) for image in back.images} == {files[n]: sizes[n] for n in annotated}


def _corners(box: Box) -> tuple[float, float, float, float]:
    return (box.x_min, box.y_min, box.x_max, box.y_max)


def _without_objects(dataset: ImportedDataset) -> set[str]:
    return {name for name, boxes in dataset.boxes.items() if not boxes}


# --- round trips


@pytest.mark.parametrize("target", ["coco", "yolo", "voc", "csv"])
def test_export_then_import_gives_the_same_annotations(source: tuple[str, ImportedDataset], target: str, tmp_path: Path) -> None:
    source_format, original = source
    assert _without_objects(original), "each source dataset has an image without objects"
    assert len(set(original.split.values())) >= 2, "each source dataset has several splits"
    unannotated = len(original.images) - len(original.annotated)
    out = tmp_path / f"{source_format}-as-{target}"
    result = export_dataset(original, out, target)
    assert result.images == len(original.annotated) and result.left_out == unannotated
    assert result.boxes == sum(map(len, original.boxes.values()))
    back = import_archive(out, task="detection")
    assert back.format == target and back.detected
    assert_same_annotations(original, result.files, back, all_concepts=target in ("coco", "yolo"))
    assert not back.warnings, back.warnings  # nothing ignored, nothing unannotated, no size mismatch


def test_a_zip_export_imports_like_the_folder(coco_dir: Path, tmp_path: Path) -> None:
    original = import_archive(coco_dir, task="detection")
    result = export_dataset(original, tmp_path / "coco.zip", "yolo")
    with zipfile.ZipFile(tmp_path / "coco.zip") as archive:
        names = archive.namelist()
    assert "data.yaml" in names and set(result.files.values()) <= set(names)
    assert not list(tmp_path.glob("*.partial"))
    back = import_archive(tmp_path / "coco.zip", task="detection", extract_to=tmp_path / "extracted")
    assert_same_annotations(original, result.files, back, all_concepts=True)


def test_coco_to_yolo_to_voc_to_coco_keeps_the_boxes(coco_dir: Path, tmp_path: Path) -> None:
    original = import_archive(coco_dir, task="detection")
    assert original.skipped.get("crowd_boxes") == 1  # a crowd region is no box: not exported either
    current, names = original, {name: name for name in original.annotated}
    for step, target in enumerate(["yolo", "voc", "coco"]):
        result = export_dataset(current, tmp_path / f"{step}-{target}", target)
        current = import_archive(tmp_path / f"{step}-{target}", task="detection")
        names = {first: result.files[name] for first, name in names.items()}
    assert_same_annotations(original, names, current, all_concepts=False)
    assert "000000000250.jpg" in {PurePosixPath(n).name for n in _without_objects(current)}


# --- what each layout holds


def test_coco_layout(coco_dir: Path, tmp_path: Path) -> None:
    original = import_archive(coco_dir, task="detection")
    export_dataset(original, tmp_path / "out", "coco")
    out = tmp_path / "out"
    assert sorted(p.name for p in (out / "annotations").iterdir()) == ["instances_train.json", "instances_val.json"]
    assert sorted(p.name for p in (out / "images" / "val").iterdir()) == sorted(COCO_VAL)
    train = json.loads((out / "annotations" / "instances_train.json").read_text())
    val = json.loads((out / "annotations" / "instances_val.json").read_text())
    assert [c["name"] for c in train["categories"]] == original.concepts == [c["name"] for c in val["categories"]]
    assert [c["id"] for c in train["categories"]] == list(range(1, 81))
    empty = next(image for image in train["images"] if image["file_name"] == "000000000250.jpg")
    assert not [a for a in train["annotations"] if a["image_id"] == empty["id"]]
    first = next(image for image in train["images"] if image["file_name"] == "000000000009.jpg")
    [box, *_] = original.boxes["images/000000000009.jpg"]
    [annotation, *_] = [a for a in train["annotations"] if a["image_id"] == first["id"]]
    assert annotation["bbox"] == [box.x_min, box.y_min, box.x_max - box.x_min, box.y_max - box.y_min]
    assert train["categories"][annotation["category_id"] - 1]["name"] == box.concept and annotation["iscrowd"] == 0
    ids = [image["id"] for image in train["images"] + val["images"]]
    assert len(set(ids)) == len(ids)


def test_yolo_layout(yolo_dir: Path, tmp_path: Path) -> None:
    original = import_archive(yolo_dir, task="detection")
    export_dataset(original, tmp_path / "out", "yolo")
    out = tmp_path / "out"
    config = yaml.safe_load((out / "data.yaml").read_text())
    assert config["train"] == "images/train" and config["val"] == "images/val" and "test" not in config
    assert list(config["names"].values()) == original.concepts and config["nc"] == 80
    assert (out / "labels" / "train" / "000000000061.txt").read_text() == ""  # annotated, no object
    assert (out / "labels" / "val" / "000000000250.txt").read_text() == ""  # had no label file: no object
    lines = (out / "labels" / "train" / "000000000009.txt").read_text().splitlines()
    assert len(lines) == len(original.boxes["images/train/000000000009.jpg"])
    for line in lines:
        class_id, *values = line.split()
        assert int(class_id) in config["names"] and len(values) == 4
        assert all(0 <= float(v) <= 1 for v in values)


def test_voc_layout_as_distributed(voc_dir: Path, tmp_path: Path) -> None:
    original = import_archive(voc_dir, task="detection")
    result = export_dataset(original, tmp_path / "out", "voc")
    out = tmp_path / "out"
    assert result.left_out == 1 and "JPEGImages/raccoon-98.jpg" not in result.files
    lists = {p.stem: p.read_text().split() for p in (out / "ImageSets" / "Main").iterdir()}
    assert lists == {
        "train": RACCOONS[:6] + ["street"], "val": RACCOONS[6:8], "trainval": RACCOONS[:8] + ["street"], "test": RACCOONS[8:],
    }
    street = ElementTree.parse(out / "Annotations" / "street.xml").getroot()
    assert street.find("object") is None and street.findtext("filename") == "street.jpg"
    assert (street.findtext("size/width"), street.findtext("size/height")) == ("640", "480")
    raccoon = ElementTree.parse(out / "Annotations" / "raccoon-119.xml").getroot()
    assert len(raccoon.findall("object")) == 3
    assert raccoon.findtext("object/bndbox/xmin").isdigit()  # whole pixels written as integers


def test_voc_keeps_fractional_corners_exactly(datasets_dir: Path, tmp_path: Path) -> None:
    image = datasets_dir / "raccoon" / "images" / "raccoon-1.jpg"  # 650x417
    box = Box("raccoon", 81.123456789012, 88.5, 522.000001, 408.25)
    dataset = ImportedDataset(
        format="test", task="detection", concepts=["raccoon"], images=[ImportedImage("raccoon-1.jpg", image, 650, 417)],
        boxes={"raccoon-1.jpg": [box]},
    )
    for target in ("voc", "coco", "yolo", "csv"):
        export_dataset(dataset, tmp_path / target, target)
        [got] = import_archive(tmp_path / target, task="detection").boxes.values()
        assert max(abs(a - b) for a, b in zip(_corners(got[0]), _corners(box), strict=True)) <= TOLERANCE, target


# --- VOC's split lists, read as distributed


def _voc_with_lists(root: Path, datasets_dir: Path, lists: dict[str, list[str]]) -> Path:
    for folder in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for stem in RACCOONS[:6]:
        shutil.copy(datasets_dir / "raccoon" / "images" / f"{stem}.jpg", root / "JPEGImages")
        shutil.copy(datasets_dir / "raccoon" / "annotations" / f"{stem}.xml", root / "Annotations")
    for name, stems in lists.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(s + "\n" for s in stems))
    return root


def _sides(dataset: ImportedDataset) -> dict[str, str]:
    return {PurePosixPath(name).stem: side for name, side in dataset.split.items()}


def test_voc_trainval_alone_means_training_and_test_is_held_out(datasets_dir: Path, tmp_path: Path) -> None:
    root = _voc_with_lists(tmp_path / "a", datasets_dir, {"trainval": RACCOONS[:4], "test": RACCOONS[4:6]})
    dataset = import_archive(root, task="detection")
    assert _sides(dataset) == {**dict.fromkeys(RACCOONS[:4], "train"), **dict.fromkeys(RACCOONS[4:6], "test")}
    assert not dataset.warnings  # the lists were read, not reported as ignored files


def test_voc_train_and_val_lists_win_over_trainval(datasets_dir: Path, tmp_path: Path) -> None:
    lists = {"train": RACCOONS[:3], "val": RACCOONS[3:4], "trainval": RACCOONS[:5], "aeroplane_train": RACCOONS[5:6]}
    dataset = import_archive(_voc_with_lists(tmp_path / "b", datasets_dir, lists), task="detection")
    # raccoon-5 is only in trainval: train.txt and val.txt say it all. A class list is no split.
    assert _sides(dataset) == {**dict.fromkeys(RACCOONS[:3], "train"), RACCOONS[3]: "val"}


def test_voc_trainval_beside_train_gives_the_rest_to_validation(datasets_dir: Path, tmp_path: Path) -> None:
    lists = {"train": RACCOONS[:3], "trainval": RACCOONS[:5]}
    dataset = import_archive(_voc_with_lists(tmp_path / "c", datasets_dir, lists), task="detection")
    assert _sides(dataset) == {**dict.fromkeys(RACCOONS[:3], "train"), **dict.fromkeys(RACCOONS[3:5], "val")}


def test_voc_image_in_several_lists_is_held_out_with_a_warning(datasets_dir: Path, tmp_path: Path) -> None:
    lists = {"train": RACCOONS[:3], "val": RACCOONS[2:4], "test": RACCOONS[3:5]}
    dataset = import_archive(_voc_with_lists(tmp_path / "d", datasets_dir, lists), task="detection")
    assert _sides(dataset) == {
        RACCOONS[0]: "train", RACCOONS[1]: "train", RACCOONS[2]: "val", RACCOONS[3]: "test", RACCOONS[4]: "test",
    }
    [warning] = [w for w in dataset.warnings if "several ImageSets splits" in w]
    assert "2 image(s)" in warning and "raccoon-3" in warning and "raccoon-4" in warning


# --- file names: safe, unique, never outside the export


def test_file_names_are_made_safe() -> None:
    assert safe_file_name("../../evil.jpg") == "evil.jpg"
    assert safe_file_name("..\\..\\win\\evil.png") == "evil.png"
    assert safe_file_name("/etc/passwd") == "passwd.jpg"  # no image extension: one is added
    assert safe_file_name(".hidden.jpg") == "hidden.jpg"  # importers skip hidden files
    assert safe_file_name("..") == "image.jpg" and safe_file_name("") == "image.jpg"
    assert safe_file_name('a b:c*?"<>|\x01.jpg') == "a_b_c_.jpg"
    assert safe_file_name("CON.jpg") == "_CON.jpg"
    assert len(safe_file_name("x" * 400 + ".jpg").encode()) <= 150


def test_hostile_and_clashing_names_stay_inside_and_come_back(datasets_dir: Path, tmp_path: Path) -> None:
    photos = sorted((datasets_dir / "raccoon" / "images").glob("raccoon-1*.jpg"))[:6]
    names = ["../../evil.jpg", "a/x.jpg", "b/X.jpg", "c/x.jpeg", "/abs/evil.jpg", "..\\..\\evil.jpg"]
    images, boxes = [], {}
    for name, photo in zip(names, photos, strict=True):
        images.append(ImportedImage(name, photo, 100, 100))
        boxes[name] = [Box("raccoon", 1.5, 2.0, 50.25, 60.0)]
    dataset = ImportedDataset(
        format="test", task="detection", concepts=["raccoon"], images=images, boxes=boxes,
        split={name: "train" for name in names[:3]} | {name: "val" for name in names[3:]},
    )
    work = tmp_path / "work"
    for target in ("coco", "yolo", "voc", "csv"):
        out = work / "deep" / "down" / target
        result = export_dataset(dataset, out, target)
        stems = [PurePosixPath(path).stem.casefold() for path in result.files.values()]
        assert len(set(stems)) == len(names)  # unique by stem, case-insensitively
        assert result.files["../../evil.jpg"].endswith("/evil.jpg")  # the first keeps its name
        assert {PurePosixPath(result.files[n]).name for n in ("/abs/evil.jpg", "..\\..\\evil.jpg")} == {"evil_2.jpg", "evil_3.jpg"}
        assert result.files["a/x.jpg"].endswith("/x.jpg") and result.files["b/X.jpg"].endswith("/X_2.jpg")
        assert all((out / path).resolve().is_relative_to(out.resolve()) for path in result.files.values())
        back = import_archive(out, task="detection")
        assert back.annotated == set(result.files.values()) and not back.rejected
        assert back.split == {result.files[name]: side for name, side in dataset.split.items()}
        zipped = export_dataset(dataset, work / f"{target}.zip", target)
        with zipfile.ZipFile(work / f"{target}.zip") as archive:
            assert all(".." not in n.split("/") and not n.startswith("/") for n in archive.namelist())
        assert zipped.files == result.files
    assert sorted(p.name for p in work.iterdir()) == ["coco.zip", "csv.zip", "deep", "voc.zip", "yolo.zip"]
    assert list(work.rglob("evil.jpg"))  # written, but only inside the exports
    assert all(p.is_relative_to(work / "deep") for p in tmp_path.rglob("evil*.jpg"))


def test_an_export_never_mixes_into_a_folder_with_files(coco_dir: Path, tmp_path: Path) -> None:
    dataset = import_archive(coco_dir, task="detection")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        export_dataset(dataset, tmp_path / "busy", "voc")
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["notes.txt"]


def test_unknown_formats_and_tasks_are_refused_naming_what_works(coco_dir: Path, tmp_path: Path) -> None:
    dataset = import_archive(coco_dir, task="detection")
    with pytest.raises(ExportError, match="unknown export format 'tfrecord'.*coco, yolo, voc, csv"):
        export_dataset(dataset, tmp_path / "a", "tfrecord")
    tags = import_archive(coco_dir, task="tagging")
    with pytest.raises(ExportError, match="a tagging dataset cannot be written as YOLO.*: csv"):
        export_dataset(tags, tmp_path / "b", "yolo")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_tagging_and_classification_round_trip_through_csv(coco_dir: Path, ants_bees_small: Path, tmp_path: Path) -> None:
    tags = import_archive(coco_dir, task="tagging")
    assert [] in tags.tags.values()  # "without concept" is an answer, and is kept
    result = export_dataset(tags, tmp_path / "tags", "csv")
    back = import_archive(tmp_path / "tags", task="tagging")
    assert back.tags == {result.files[name]: labels for name, labels in tags.tags.items()}
    assert back.split == {result.files[name]: side for name, side in tags.split.items()}
    classes = import_archive(ants_bees_small, task="classification")
    result = export_dataset(classes, tmp_path / "classes", "csv")
    back = import_archive(tmp_path / "classes", task="classification")
    assert back.labels == {result.files[name]: label for name, label in classes.labels.items()}
    assert back.split == {result.files[name]: side for name, side in classes.split.items()}
    assert set(back.split.values()) == {"train", "val"}


# --- the command line


def test_convert_command_writes_a_format_that_reads_back(voc_dir: Path, tmp_path: Path) -> None:
    original = import_archive(voc_dir, task="detection")
    out = tmp_path / "as-yolo"
    outcome = runner.invoke(app, ["convert", str(voc_dir), "--task", "detection", "--to", "yolo", "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert "wrote" in outcome.output and "1 unannotated image(s) left out" in outcome.output
    back = import_archive(out, task="detection")
    files = {name: name.replace("JPEGImages/", f"images/{original.split[name]}/") for name in original.annotated}
    assert_same_annotations(original, files, back, all_concepts=True)
    again = runner.invoke(app, ["convert", str(voc_dir), "--to", "coco", "--out", str(out)])
    assert again.exit_code == 2 and "not an empty folder" in again.output
    inside = runner.invoke(app, ["convert", str(voc_dir), "--to", "coco", "--out", str(voc_dir / "coco")])
    assert inside.exit_code == 2 and "inside the dataset" in inside.output
    unknown = runner.invoke(app, ["convert", str(voc_dir), "--to", "kitti", "--out", str(tmp_path / "k")])
    assert unknown.exit_code == 2 and "coco, yolo, voc, csv" in unknown.output
