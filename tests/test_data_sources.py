"""Reading datasets from disk for the CLI (``load_dataset``): the importers' rules, converted for the engine.

Each test states one rule of the single data path (the platform reads archives by the same rules:
see tests/platform/test_imports_same_data.py).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from visiontrain.data import checks
from visiontrain.data.checks import check_images
from visiontrain.data.errors import DataError
from visiontrain.data.sources import load_csv, load_dataset, load_image_folder


def photos(datasets_dir: Path, split: str, label: str, count: int) -> list[Path]:
    folder = datasets_dir / "ants_bees" / split / label
    return sorted(folder.glob("*.jpg"))[:count]


def make_folder(target: Path, files: dict[str, list[Path]]) -> Path:
    for label, paths in files.items():
        (target / label).mkdir(parents=True, exist_ok=True)
        for path in paths:
            shutil.copy(path, target / label / path.name)
    return target


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_real_ants_bees_with_train_and_val_folders(datasets_dir: Path) -> None:
    spec = load_dataset(datasets_dir / "ants_bees")
    assert spec.classes == ["ants", "bees"] and spec.task == "classification"
    assert spec.class_counts() == {"ants": 124, "bees": 121}  # imageNotFound.gif is a real image: kept
    assert spec.val is not None and spec.class_counts(spec.val) == {"ants": 70, "bees": 83}
    assert spec.test is None and spec.rejected == []
    assert [s.path for s in spec.train] == sorted((s.path for s in spec.train), key=Path.as_posix)
    assert all(s.path.is_absolute() and s.path.parent.name == s.label for s in spec.train)
    assert load_dataset(str(datasets_dir / "ants_bees")).train == spec.train  # str or Path, same order


def test_flat_class_folders_nested_images_hidden_files_junk_and_loose_images(datasets_dir: Path, tmp_path: Path) -> None:
    root = make_folder(tmp_path / "data", {"ants": photos(datasets_dir, "train", "ants", 3)})
    make_folder(root / "bees" / "2024" / "june", {"": photos(datasets_dir, "train", "bees", 2)})
    (root / "bees" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "__MACOSX" / "ants").mkdir(parents=True)
    (root / "__MACOSX" / "ants" / "._a.jpg").write_bytes(b"junk")
    (root / ".thumbnails").mkdir()
    (root / "ants" / "labels.txt").write_text("ants\n")
    (root / "README.md").write_text("my photos\n")  # metadata beside the classes: not data, not rejected
    shutil.copy(photos(datasets_dir, "train", "ants", 1)[0], root / "stray.jpg")

    spec = load_image_folder(root)
    assert spec.classes == ["ants", "bees"]
    assert spec.val is None and spec.test is None
    assert spec.class_counts() == {"ants": 3, "bees": 2}
    assert all("june" in s.path.parts for s in spec.train if s.label == "bees")
    reasons = {r.path.name: r.reason for r in spec.rejected}
    assert set(reasons) == {"labels.txt", "stray.jpg"}
    assert "not an image (.txt) in class folder 'ants'" == reasons["labels.txt"]
    assert "not inside a class folder" in reasons["stray.jpg"]  # loose image: no label, reported


def test_test_folder_is_held_out_never_validation(datasets_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_folder(root / "train", {"ants": photos(datasets_dir, "train", "ants", 2), "bees": photos(datasets_dir, "train", "bees", 2)})
    make_folder(root / "test", {"ants": photos(datasets_dir, "val", "ants", 2)})
    spec = load_image_folder(root)
    assert spec.val is None and len(spec.train) == 4  # validation is split off train by the run, never test/
    assert spec.test is not None and [s.path.parent.parent.name for s in spec.test] == ["test", "test"]
    assert "2 test, held out" in spec.source
    make_folder(root / "valid", {"bees": photos(datasets_dir, "val", "bees", 2)})
    spec = load_image_folder(root)
    assert spec.val is not None and spec.class_counts(spec.val) == {"ants": 0, "bees": 2}
    assert spec.test is not None and len(spec.test) == 2


def test_folder_layout_errors_name_the_path_and_the_problem(datasets_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"empty: no files in the dataset"):
        load_image_folder(empty)
    with pytest.raises(DataError, match="not a directory"):
        load_image_folder(tmp_path / "nowhere")

    split = make_folder(tmp_path / "split" / "train", {"ants": photos(datasets_dir, "train", "ants", 2)})
    make_folder(split.parent / "val", {"wasps": photos(datasets_dir, "val", "ants", 1)})
    with pytest.raises(DataError, match=r"validation\) has classes with no training images: 'wasps'"):
        load_image_folder(split.parent)

    # A train/ folder beside class folders is refused (it used to become a class "train" on the platform).
    mixed = make_folder(tmp_path / "mixed" / "train", {"ants": photos(datasets_dir, "train", "ants", 2)})
    make_folder(mixed.parent / "bees", {"": photos(datasets_dir, "train", "bees", 1)})
    with pytest.raises(DataError, match=r"mixes split folders \(train/\) with other folders of images \(bees/\)"):
        load_image_folder(mixed.parent)

    only_val = make_folder(tmp_path / "only_val" / "val", {"ants": photos(datasets_dir, "val", "ants", 2)})
    with pytest.raises(DataError, match=r"no training images \(2 validation"):
        load_dataset(only_val.parent)


def test_symlinked_files_and_folders_are_followed_and_a_loop_is_read_once(datasets_dir: Path, tmp_path: Path) -> None:
    elsewhere = make_folder(tmp_path / "elsewhere", {"bees": photos(datasets_dir, "train", "bees", 2)})
    root = make_folder(tmp_path / "data", {"ants": photos(datasets_dir, "train", "ants", 2)})
    os.symlink(elsewhere / "bees", root / "bees")  # a class folder kept on another disk
    ant = photos(datasets_dir, "train", "ants", 3)[2]
    os.symlink(ant, root / "ants" / "linked.jpg")
    os.symlink(root / "ants", root / "ants" / "again")  # a loop
    spec = load_image_folder(root)
    assert spec.class_counts() == {"ants": 3, "bees": 2}
    assert spec.rejected == []


def test_csv_header_names_and_delimiters_give_the_same_dataset(datasets_dir: Path, tmp_path: Path) -> None:
    ant, bee = photos(datasets_dir, "train", "ants", 1)[0], photos(datasets_dir, "train", "bees", 1)[0]
    shutil.copy(ant, tmp_path / "a.jpg")
    texts = {
        "plain.csv": f"a.jpg,ants\n{bee},bees\n\n",
        "named.csv": f"\ufeffFilename,Class\na.jpg,ants\n{bee},bees\n",
        "order.csv": f"concept;image\nants;a.jpg\nbees;{bee}\n",  # semicolons, as spreadsheets in many locales write
        "tabs.csv": f"Image Path\tLabel\na.jpg\tants\n{bee}\tbees\n",
        "file_name.csv": f"file_name,category\na.jpg,ants\n{bee},bees\n",
    }
    expected = sorted([(tmp_path / "a.jpg", ("ants",)), (bee, ("bees",))], key=lambda row: row[0].as_posix())
    for name, text in texts.items():
        spec = load_csv(write_csv(tmp_path / name, text))
        assert spec.classes == ["ants", "bees"], name
        assert [(s.path, s.labels) for s in spec.train] == expected, name
        assert spec.val is None and spec.rejected == [], name


def test_csv_paths_resolve_beside_the_csv_in_images_and_from_root(datasets_dir: Path, tmp_path: Path) -> None:
    raccoon = datasets_dir / "raccoon"
    # Bare file names in a CSV beside images/ (one row per box: 173 rows, 160 images); boxes feed tagging.
    spec = load_dataset(raccoon / "train_labels.csv", task="tagging")
    assert spec.classes == ["raccoon"] and len(spec.train) == 160 and spec.rejected == []
    assert all(s.labels == ("raccoon",) and s.path.parent == raccoon / "images" for s in spec.train)
    assert load_csv(raccoon / "train_labels.csv", root=raccoon / "images", task="tagging").train == spec.train
    with pytest.raises(DataError, match="hold boxes; import them into a detection or tagging view"):
        load_dataset(raccoon / "train_labels.csv")  # boxes are not one class per image

    bee = photos(datasets_dir, "train", "bees", 1)[0]
    csv_path = write_csv(tmp_path / "labels.csv", f"path,label\n{bee},bees\nmissing.jpg,ants\n")
    spec = load_csv(csv_path)
    assert [s.label for s in spec.train] == ["bees"]
    reasons = {r.path.name: r.reason for r in spec.rejected}
    assert reasons["missing.jpg"].startswith("listed in labels.csv line 3 but not found")


def test_csv_split_column_with_test_and_rows_refused_by_line(datasets_dir: Path, tmp_path: Path) -> None:
    ants, bees = photos(datasets_dir, "train", "ants", 4), photos(datasets_dir, "train", "bees", 3)
    rows = [
        "file,label,split",
        f"{ants[0]},ants,train",
        f"{ants[1]},ants,val",
        f"{ants[2]},ants,test",
        f"{bees[0]},bees,TRAIN",
        f"{bees[1]},bees,train",
        f"{bees[1]},ants,train",  # conflicting labels
        f"{bees[2]},bees,holdout",  # unknown split: refused, never trained on by default
        f"{ants[3]},,train",  # no label
    ]
    spec = load_csv(write_csv(tmp_path / "split.csv", "\n".join(rows)))
    assert [s.path for s in spec.train] == sorted([ants[0], bees[0]], key=Path.as_posix)
    assert spec.val is not None and [s.path for s in spec.val] == [ants[1]]
    assert spec.test is not None and [s.path for s in spec.test] == [ants[2]]
    reasons = {r.path: r.reason for r in spec.rejected}
    assert set(reasons) == {bees[1], bees[2], ants[3]}
    assert reasons[bees[1]].startswith("labelled ants, bees (split.csv line 6, split.csv line 7)")
    assert reasons[bees[2]] == "split.csv line 8 has split 'holdout'; use train, val or test (or leave it empty)"
    assert reasons[ants[3]].startswith("split.csv line 9 has no label")


def test_unusable_csvs_are_errors_naming_the_file_and_line(datasets_dir: Path, tmp_path: Path) -> None:
    bee = photos(datasets_dir, "train", "bees", 1)[0]
    with pytest.raises(DataError, match=r"line 1 \(img, target\) names no recognised columns"):
        load_csv(write_csv(tmp_path / "unknown.csv", f"img,target\n{bee},bees\n"))
    with pytest.raises(DataError, match="blank.csv: empty"):
        load_csv(write_csv(tmp_path / "blank.csv", "\n\n"))
    with pytest.raises(DataError, match=r"cannot import .*data\.json: give a dataset folder"):
        (tmp_path / "data.json").write_text("{}")
        load_dataset(tmp_path / "data.json")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nothing")
    # Multi-label tags are not single classes: a classification read refuses each such row, naming it.
    spec = load_dataset(datasets_dir / "coco128_coco" / "tags.csv")
    reasons = {r.path.name: r.reason for r in spec.rejected}
    assert reasons["000000000009.jpg"].startswith("labelled bowl, broccoli, orange (tags.csv line 2)")
    assert "import into a tagging view for several" in reasons["000000000009.jpg"]
    assert all(len(s.labels) == 1 for s in spec.train)


def test_tagging_csv_with_labels_joined_by_semicolons_empty_and_split(datasets_dir: Path, tmp_path: Path) -> None:
    spec = load_dataset(datasets_dir / "coco128_coco" / "tags.csv", task="tagging")
    assert spec.task == "tagging" and len(spec.train) == 128 and spec.val is None and spec.rejected == []
    by_name = {s.path.name: s.labels for s in spec.train}
    assert by_name["000000000009.jpg"] == ("bowl", "broccoli", "orange")
    assert sum(1 for labels in by_name.values() if labels == ()) == 2  # "without concept": all-negative samples
    assert len(spec.classes) == 71 and spec.class_counts()["person"] > 50

    ants, bees = photos(datasets_dir, "train", "ants", 2), photos(datasets_dir, "train", "bees", 3)
    text = "path,tags,split\n" + "\n".join(
        [f"{ants[0]},ants;outdoor,train", f"{ants[1]},,train", f"{bees[2]},bees,", f"{bees[0]},bees,val",
         f"{bees[1]},bees;outdoor,test"]
    )
    spec = load_dataset(write_csv(tmp_path / "tags.csv", text), task="tagging")
    assert [(s.path, s.labels) for s in spec.train] == sorted(
        [(ants[0], ("ants", "outdoor")), (ants[1], ()), (bees[2], ("bees",))], key=lambda row: row[0].as_posix()
    )
    assert spec.val is not None and [s.labels for s in spec.val] == [("bees",)]
    assert spec.test is not None and [s.labels for s in spec.test] == [("bees", "outdoor")]
    with pytest.raises(DataError, match="'bees'"):  # a validation concept the model never trains on
        load_dataset(write_csv(tmp_path / "bad.csv", f"path,tags,split\n{ants[0]},ants,train\n{bees[0]},bees,val\n"), task="tagging")


def test_coco_yolo_and_voc_feed_tagging_with_each_images_set_of_box_concepts(datasets_dir: Path) -> None:
    from_csv = load_dataset(datasets_dir / "coco128_coco" / "tags.csv", task="tagging")
    from_coco = load_dataset(datasets_dir / "coco128_coco", task="tagging")
    from_yolo = load_dataset(datasets_dir / "coco128_yolo", task="tagging")
    assert from_coco.source.startswith("COCO") and from_yolo.source.startswith("YOLO")
    expected = {s.path.name: s.labels for s in from_csv.train}
    assert {s.path.name: s.labels for s in from_coco.train} == expected
    assert {s.path.name: s.labels for s in from_yolo.train} == expected
    assert {r.path.name for r in from_yolo.rejected} == {"000000000656.txt", "000000000659.txt"}  # labels without image

    raccoon = load_dataset(datasets_dir / "raccoon", task="tagging")
    assert raccoon.source.startswith("Pascal VOC") and len(raccoon.train) == 200 and raccoon.classes == ["raccoon"]
    with pytest.raises(DataError, match="cannot feed a classification view"):
        load_dataset(datasets_dir / "coco128_yolo")
    with pytest.raises(DataError, match="tasks: classification, tagging, detection"):
        load_dataset(datasets_dir / "raccoon", task="segmentation")
    boxes = load_dataset(datasets_dir / "raccoon", task="detection")  # the same files, for detection: the boxes
    assert len(boxes.train) == 200 and sum(len(s.boxes) for s in boxes.train) == 217


def test_load_dataset_validation_override(datasets_dir: Path, tmp_path: Path) -> None:
    train = make_folder(
        tmp_path / "train", {"ants": photos(datasets_dir, "train", "ants", 3), "bees": photos(datasets_dir, "train", "bees", 3)}
    )
    val = make_folder(tmp_path / "holdout", {"bees": photos(datasets_dir, "val", "bees", 2)})
    spec = load_dataset(train, validation=val)
    assert spec.val is not None and [s.label for s in spec.val] == ["bees", "bees"]
    assert "validation" in spec.source

    val_csv = write_csv(tmp_path / "val.csv", "".join(f"{p},ants\n" for p in photos(datasets_dir, "val", "ants", 2)))
    spec = load_dataset(datasets_dir / "ants_bees", validation=val_csv)
    assert spec.val is not None and len(spec.val) == 2 and len(spec.train) == 245

    wasps = make_folder(tmp_path / "wasps", {"wasps": photos(datasets_dir, "val", "bees", 1)})
    with pytest.raises(DataError, match="'wasps'"):
        load_dataset(train, validation=wasps)
    with pytest.raises(DataError, match="own train/val/test split"):
        load_dataset(train, validation=datasets_dir / "ants_bees")


def test_every_image_is_decoded_once_between_the_importer_and_the_check(
    datasets_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_folder(tmp_path / "data", {"ants": photos(datasets_dir, "train", "ants", 3), "bees": photos(datasets_dir, "train", "bees", 3)})
    Image.new("RGB", (4, 4), "white").save(root / "bees" / "dot.png")
    decoded: list[Path] = []
    real_open = checks.open_image

    def counting_open(source, **kwargs):  # type: ignore[no-untyped-def]
        decoded.append(Path(source))
        return real_open(source, **kwargs)

    monkeypatch.setattr(checks, "open_image", counting_open)
    spec = load_dataset(root)
    assert {r.path.name: r.reason for r in spec.rejected} == {
        "dot.png": f"image is only 4x4 pixels; at least {checks.MIN_IMAGE_SIDE}x{checks.MIN_IMAGE_SIDE} are needed"
    }
    kept, rejected = check_images(spec.train)  # the runner's check: same verdicts, no second decode
    assert kept == spec.train and rejected == []
    assert sorted(decoded) == sorted({*decoded}) and len(decoded) == 7
    # A file changed since is decoded again.
    Image.new("RGB", (64, 64), "white").save(root / "bees" / "dot.png")
    os.utime(root / "bees" / "dot.png", ns=(1, 1))
    assert check_images([spec.train[0].__class__(root / "bees" / "dot.png", "bees")])[1] == []
    assert len(decoded) == 8


def test_what_the_importer_noticed_reaches_the_dataset_spec(datasets_dir) -> None:
    """The YOLO copy has two images without a label file: the CLI user is told, as the platform's import report does."""
    spec = load_dataset(datasets_dir / "coco128_yolo", task="tagging")
    assert any("000000000250.jpg" in w and "no label file" in w for w in spec.warnings)
