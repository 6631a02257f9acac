"""Importing ImageFolder trees and CSV files: layouts, junk files, malformed rows, validation overrides."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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


def test_real_ants_bees_with_train_and_val_folders(datasets_dir: Path) -> None:
    spec = load_dataset(datasets_dir / "ants_bees")
    assert spec.classes == ["ants", "bees"]
    assert spec.class_counts() == {"ants": 124, "bees": 121}  # imageNotFound.gif is an image file: kept here
    assert spec.val is not None and spec.class_counts(spec.val) == {"ants": 70, "bees": 83}
    assert spec.rejected == []
    assert [s.path for s in spec.train] == sorted((s.path for s in spec.train), key=Path.as_posix)
    assert all(s.path.is_absolute() and s.path.parent.name == s.label for s in spec.train)
    assert load_dataset(str(datasets_dir / "ants_bees")).train == spec.train  # str or Path, same order


def test_flat_class_folders_give_train_only_with_nested_images_hidden_files_and_junk(
    datasets_dir: Path, tmp_path: Path
) -> None:
    root = make_folder(tmp_path / "data", {"ants": photos(datasets_dir, "train", "ants", 3)})
    make_folder(root / "bees" / "2024" / "june", {"": photos(datasets_dir, "train", "bees", 2)})
    (root / "bees" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "__MACOSX" / "ants").mkdir(parents=True)
    (root / "__MACOSX" / "ants" / "._a.jpg").write_bytes(b"junk")
    (root / ".thumbnails").mkdir()
    (root / "ants" / "labels.txt").write_text("ants\n")
    (root / "README.md").write_text("my photos\n")  # metadata beside the classes: not data, not reported
    shutil.copy(photos(datasets_dir, "train", "ants", 1)[0], root / "stray.jpg")

    spec = load_image_folder(root)
    assert spec.classes == ["ants", "bees"]
    assert spec.val is None
    assert spec.class_counts() == {"ants": 3, "bees": 2}
    assert all("june" in s.path.parts for s in spec.train if s.label == "bees")
    reasons = {r.path.name: r.reason for r in spec.rejected}
    assert set(reasons) == {"labels.txt", "stray.jpg"}
    assert "not an image file" in reasons["labels.txt"] and "class folder" in reasons["stray.jpg"]


def test_folder_layout_errors_name_the_path_and_expected_layout(datasets_dir: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no class folders in .*empty.*<folder>/<class>/<images>"):
        load_image_folder(empty)
    with pytest.raises(DataError, match="not a directory"):
        load_image_folder(tmp_path / "nowhere")

    root = make_folder(tmp_path / "one_empty_class", {"ants": photos(datasets_dir, "train", "ants", 2)})
    (root / "bees").mkdir()
    with pytest.raises(DataError, match=r"class folder .*bees has no images"):
        load_image_folder(root)

    split = make_folder(tmp_path / "split" / "train", {"ants": photos(datasets_dir, "train", "ants", 2)})
    make_folder(split.parent / "val", {"wasps": photos(datasets_dir, "val", "ants", 1)})
    with pytest.raises(DataError, match="'wasps'"):
        load_image_folder(split.parent)

    mixed = make_folder(tmp_path / "mixed" / "train", {"ants": photos(datasets_dir, "train", "ants", 2)})
    make_folder(mixed.parent / "bees", {"": photos(datasets_dir, "train", "bees", 1)})
    with pytest.raises(DataError, match="'bees'"):
        load_image_folder(mixed.parent)


def test_train_folder_alone_and_test_folder_is_not_used(datasets_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "ds"
    make_folder(root / "train", {"ants": photos(datasets_dir, "train", "ants", 2), "bees": photos(datasets_dir, "train", "bees", 2)})
    make_folder(root / "test", {"ants": photos(datasets_dir, "val", "ants", 2)})
    spec = load_image_folder(root)
    assert spec.val is None and len(spec.train) == 4
    assert "test/ not used" in spec.source
    make_folder(root / "valid", {"bees": photos(datasets_dir, "val", "bees", 2)})
    spec = load_image_folder(root)
    assert spec.val is not None and spec.class_counts(spec.val) == {"ants": 0, "bees": 2}


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_with_and_without_header_gives_the_same_dataset(datasets_dir: Path, tmp_path: Path) -> None:
    ant, bee = photos(datasets_dir, "train", "ants", 1)[0], photos(datasets_dir, "train", "bees", 1)[0]
    shutil.copy(ant, tmp_path / "a.jpg")
    plain = write_csv(tmp_path / "plain.csv", f"a.jpg,ants\n{bee},bees\n\n")
    named = write_csv(tmp_path / "named.csv", f"\ufeffFilename,Class\na.jpg,ants\n{bee},bees\n")
    other_order = write_csv(tmp_path / "order.csv", f"concept;image\nants;a.jpg\nbees;{bee}\n")
    expected = sorted([(tmp_path / "a.jpg", "ants"), (bee, "bees")], key=lambda row: row[0].as_posix())
    specs = [load_csv(p) for p in (plain, named, other_order)]
    for spec in specs:
        assert spec.classes == ["ants", "bees"]
        assert [(s.path, s.label) for s in spec.train] == expected
        assert spec.val is None and spec.rejected == []
    assert specs[0].train == specs[1].train == specs[2].train


def test_csv_relative_paths_use_root_and_missing_files_are_rejected(datasets_dir: Path, tmp_path: Path) -> None:
    raccoon = datasets_dir / "raccoon"
    spec = load_csv(raccoon / "train_labels.csv", root=raccoon / "images")  # one row per box: 173 rows, 160 images
    assert spec.classes == ["raccoon"] and len(spec.train) == 160 and spec.rejected == []
    with pytest.raises(DataError, match="give the folder the paths are relative to"):
        load_dataset(raccoon / "train_labels.csv")

    bee = photos(datasets_dir, "train", "bees", 1)[0]
    csv_path = write_csv(tmp_path / "labels.csv", f"path,label\n{bee},bees\nmissing.jpg,ants\nsub,ants\n")
    (tmp_path / "sub").mkdir()
    spec = load_csv(csv_path)
    assert [s.label for s in spec.train] == ["bees"]
    reasons = {r.path.name: r.reason for r in spec.rejected}
    assert reasons["missing.jpg"] == "file not found (line 3)"
    assert "folder" in reasons["sub"]


def test_csv_split_column_fixes_validation_and_conflicting_labels_are_rejected(
    datasets_dir: Path, tmp_path: Path
) -> None:
    ants, bees = photos(datasets_dir, "train", "ants", 3), photos(datasets_dir, "train", "bees", 2)
    rows = [
        "file,label,split",
        f"{ants[0]},ants,train",
        f"{ants[1]},ants,val",
        f"{ants[2]},ants,test",
        f"{bees[0]},bees,TRAIN",
        f"{bees[1]},bees,train",
        f"{bees[1]},ants,train",
    ]
    spec = load_csv(write_csv(tmp_path / "split.csv", "\n".join(rows)))
    assert [s.path for s in spec.train] == [ants[0], bees[0]]
    assert spec.val is not None and [s.path for s in spec.val] == [ants[1]]
    reasons = {r.path: r.reason for r in spec.rejected}
    assert "test" in reasons[ants[2]]
    assert "'bees' (line 6)" in reasons[bees[1]] and "'ants' (line 7)" in reasons[bees[1]]


def test_malformed_csv_rows_are_errors_naming_the_line(datasets_dir: Path, tmp_path: Path) -> None:
    bee = photos(datasets_dir, "train", "bees", 1)[0]
    with pytest.raises(DataError, match=r"line 3 has 1 column"):
        load_csv(write_csv(tmp_path / "short.csv", f"path,label\n{bee},bees\n{bee}\n"))
    with pytest.raises(DataError, match=r"line 2 has no label"):
        load_csv(write_csv(tmp_path / "nolabel.csv", f"path,label\n{bee},\n"))
    with pytest.raises(DataError, match=r"line 2 has split 'holdout'"):
        load_csv(write_csv(tmp_path / "badsplit.csv", f"path,label,split\n{bee},bees,holdout\n"))
    with pytest.raises(DataError, match=r"line 1 looks like a header \(img, target\)"):
        load_csv(write_csv(tmp_path / "unknown.csv", f"img,target\n{bee},bees\n"))
    with pytest.raises(DataError, match="no rows"):
        load_csv(write_csv(tmp_path / "blank.csv", "\n\n"))
    # Multi-label tags are not single-label classes: refused with the expected column names.
    with pytest.raises(DataError, match="class column one of label"):
        load_dataset(datasets_dir / "coco128_coco" / "tags.csv")


def test_load_dataset_dispatch_and_validation_override(datasets_dir: Path, tmp_path: Path) -> None:
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
    with pytest.raises(DataError, match="own train/val split"):
        load_dataset(train, validation=datasets_dir / "ants_bees")
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nothing")
    (tmp_path / "data.json").write_text("{}")
    with pytest.raises(DataError, match=r"image folder .* or a \.csv file"):
        load_dataset(tmp_path / "data.json")
