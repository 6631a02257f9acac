"""Checking images before training: bad files are left out with a reason; class problems become warnings."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from visiontrain.data.checks import check_images, class_counts, dataset_warnings, require_training_images
from visiontrain.data.dataset import Sample
from visiontrain.data.errors import DataError
from visiontrain.data.sources import load_image_folder


def real_photos(datasets_dir: Path, label: str, count: int) -> list[Sample]:
    paths = sorted((datasets_dir / "ants_bees" / "train" / label).glob("*.jpg"))[:count]
    return [Sample(p, label) for p in paths]


def bomb_png(path: Path, side: int = 30_000) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_bad_files_are_rejected_with_reasons_and_good_ones_kept_in_order(datasets_dir: Path, tmp_path: Path) -> None:
    good = real_photos(datasets_dir, "ants", 3)
    data = good[0].path.read_bytes()
    (tmp_path / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.jpg").write_text("hello")
    (tmp_path / "empty.jpg").write_bytes(b"")
    bomb_png(tmp_path / "bomb.png")
    Image.new("RGB", (4, 30)).save(tmp_path / "sliver.png")
    Image.new("L", (8, 8)).save(tmp_path / "tiny_but_ok.png")
    gif = datasets_dir / "ants_bees" / "train" / "ants" / "imageNotFound.gif"
    bad_names = ["truncated.jpg", "text.jpg", "empty.jpg", "bomb.png", "sliver.png", "missing.jpg"]
    samples = [
        good[0],
        *(Sample(tmp_path / name, "ants") for name in bad_names[:3]),
        good[1],
        *(Sample(tmp_path / name, "ants") for name in bad_names[3:]),
        Sample(tmp_path / "tiny_but_ok.png", "ants"),
        Sample(gif, "ants"),
        good[2],
    ]

    kept, rejected = check_images(samples, workers=2)

    assert kept == [good[0], good[1], Sample(tmp_path / "tiny_but_ok.png", "ants"), Sample(gif, "ants"), good[2]]
    reasons = {r.path.name: r.reason for r in rejected}
    assert list(reasons) == bad_names
    assert "truncated" in reasons["truncated.jpg"]
    assert "not an image" in reasons["text.jpg"]
    assert "empty" in reasons["empty.jpg"]
    assert "too large" in reasons["bomb.png"]
    assert reasons["sliver.png"] == "image is only 4x30 pixels; at least 8x8 are needed"
    assert "cannot read file" in reasons["missing.jpg"]


def test_checking_is_quick_on_real_photos(datasets_dir: Path) -> None:
    spec = load_image_folder(datasets_dir / "ants_bees")
    kept, rejected = check_images(spec.train[:60], workers=1)
    assert kept == spec.train[:60] and rejected == []
    assert check_images([], workers=4) == ([], [])


def test_too_few_images_and_missing_validation_classes_are_warned(datasets_dir: Path) -> None:
    train = real_photos(datasets_dir, "ants", 12) + real_photos(datasets_dir, "bees", 9)
    val = real_photos(datasets_dir, "ants", 14)[12:]
    warnings = dataset_warnings(["ants", "bees"], train, val)
    assert any("'bees' has only 9 training images" in w and "at least 20" in w for w in warnings)
    assert any("'ants' has only 12 training images" in w for w in warnings)
    assert any("'bees' has no validation images" in w for w in warnings)
    assert any("fewer than 15 validation images ('ants': 2)" in w for w in warnings)
    assert not any("imbalanced" in w for w in warnings)  # 12 vs 9 is fine


def test_the_warnings_start_exactly_at_the_shared_thresholds(datasets_dir: Path) -> None:
    from visiontrain.data.checks import MIN_TRAINING_IMAGES_PER_CONCEPT as TRAIN, MIN_VALIDATION_IMAGES_PER_CONCEPT as VAL

    ants = real_photos(datasets_dir, "ants", TRAIN + VAL)
    bees = real_photos(datasets_dir, "bees", TRAIN + VAL)
    enough = dataset_warnings(["ants", "bees"], ants[:TRAIN] + bees[:TRAIN], ants[TRAIN:] + bees[TRAIN:])
    assert not any("training image" in w or "validation images" in w for w in enough), enough
    short = dataset_warnings(["ants", "bees"], ants[: TRAIN - 1] + bees[:TRAIN], ants[TRAIN:] + bees[TRAIN + 1 :])
    assert any(f"'ants' has only {TRAIN - 1} training images" in w for w in short)
    assert any(f"('bees': {VAL - 1})" in w for w in short)


def test_imbalance_is_reported_with_counts(datasets_dir: Path) -> None:
    train = real_photos(datasets_dir, "ants", 30) + real_photos(datasets_dir, "bees", 10)
    warnings = dataset_warnings(["ants", "bees"], train, None)
    imbalance = [w for w in warnings if "imbalanced" in w]
    assert len(imbalance) == 1
    assert "'ants' has 3.0x as many training images as 'bees'" in imbalance[0]
    assert "ants: 30, bees: 10" in imbalance[0]
    assert not any("imbalanced" in w for w in dataset_warnings(["ants", "bees"], train[:29] + train[30:], None))


def test_duplicates_across_classes_and_across_train_and_val_are_warned(datasets_dir: Path, tmp_path: Path) -> None:
    ants = real_photos(datasets_dir, "ants", 12)
    bees = real_photos(datasets_dir, "bees", 12)
    same_as_ant = tmp_path / "copy_of_ant.jpg"
    shutil.copy(ants[0].path, same_as_ant)
    same_as_bee = tmp_path / "copy_of_bee.jpg"
    shutil.copy(bees[0].path, same_as_bee)
    second_ant = tmp_path / "second_ant.jpg"
    shutil.copy(ants[1].path, second_ant)
    train = [*ants, *bees, Sample(same_as_ant, "bees"), Sample(second_ant, "ants")]
    val = [Sample(same_as_bee, "bees")]

    warnings = dataset_warnings(["ants", "bees"], train, val)

    conflict = next(w for w in warnings if "different classes" in w)
    assert str(same_as_ant) in conflict and str(ants[0].path) in conflict
    leak = next(w for w in warnings if "both training and validation" in w)
    assert str(same_as_bee) in leak and str(bees[0].path) in leak
    assert any(w.startswith("1 file(s) are exact copies") for w in warnings)
    assert not any("exact copies" in w or "different classes" in w for w in dataset_warnings(["ants", "bees"], ants + bees, []))


def test_a_class_with_no_training_images_left_is_an_error(datasets_dir: Path) -> None:
    ants = real_photos(datasets_dir, "ants", 2)
    assert class_counts(["ants", "bees"], ants) == {"ants": 2, "bees": 0}
    require_training_images(["ants"], ants)
    with pytest.raises(DataError, match=r"class 'bees' has no usable training images"):
        require_training_images(["ants", "bees"], ants)


def test_inspect_image_gives_the_oriented_full_size_and_the_reason_without_server_paths(
    datasets_dir: Path, tmp_path: Path
) -> None:
    from visiontrain.data.checks import ImageInfo, inspect_image

    photo = real_photos(datasets_dir, "ants", 1)[0].path
    with Image.open(photo) as original:
        width, height = original.size
        exif = original.getexif()
        exif[0x0112] = 6  # rotated 90 degrees: the sides swap
        original.save(tmp_path / "rotated.jpg", exif=exif)
    # The full size (a draft decode of a JPEG is smaller), after EXIF orientation.
    assert inspect_image(photo) == ImageInfo(width, height)
    assert inspect_image(tmp_path / "rotated.jpg") == ImageInfo(height, width)
    (tmp_path / "deep" / "folder").mkdir(parents=True)
    (tmp_path / "deep" / "folder" / "text.jpg").write_text("hello")
    reason = inspect_image(tmp_path / "deep" / "folder" / "text.jpg")
    assert isinstance(reason, str) and str(tmp_path) not in reason
