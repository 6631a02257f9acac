"""Tar archives (plain and compressed) extract and import like zips, with the same refusals before a byte is written."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from visiontrain.data.archives import ArchiveError, extract_archive
from visiontrain.data.importers import import_archive

ANTS_BEES = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ants_bees"
MB = 1024 * 1024


def _tar(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as archive:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                archive.addfile(entry)
            else:
                info = tarfile.TarInfo(entry[0])
                info.size = len(entry[1])
                archive.addfile(info, io.BytesIO(entry[1]))
    return path


def _photos(count: int) -> list[tuple[str, bytes]]:
    found = []
    for concept in ("ants", "bees"):
        for photo in sorted((ANTS_BEES / "train" / concept).glob("*.jpg"))[:count]:
            found.append((f"train/{concept}/{photo.name}", photo.read_bytes()))
    return found


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:xz"])
def test_an_imagefolder_tar_imports_like_the_same_zip(tmp_path: Path, mode: str) -> None:
    photos = _photos(3)
    tar = _tar(tmp_path / "photos.tar", photos + [("train/.DS_Store", b"clutter")], mode)
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        for name, data in photos:
            archive.writestr(name, data)
    from_tar = import_archive(tar, task="classification")
    from_zip = import_archive(tmp_path / "photos.zip", task="classification")
    try:
        assert from_tar.format == from_zip.format == "imagefolder"
        assert {i.name: from_tar.labels[i.name] for i in from_tar.images} == {i.name: from_zip.labels[i.name] for i in from_zip.images}
        assert sorted(from_tar.labels.values()) == ["ants"] * 3 + ["bees"] * 3
        assert [i.path.read_bytes() for i in sorted(from_tar.images, key=lambda i: i.name)] == [
            data for _, data in sorted(photos)
        ]
        assert from_tar.skipped.get("system_files") == 1
    finally:
        for dataset in (from_tar, from_zip):
            if dataset.extraction_dir is not None:
                import shutil

                shutil.rmtree(dataset.extraction_dir, ignore_errors=True)


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([("../escape.jpg", b"x")], "points outside the archive"),
        ([("/etc/cron.d/evil", b"x")], "absolute path"),
        ([("a\\..\\b.jpg", b"x")], "backslashes"),
        ([_link("train/ants/link.jpg", "/etc/passwd", tarfile.SYMTYPE)], "is a link"),
        ([("a.jpg", b"x"), _link("train/ants/hard.jpg", "a.jpg", tarfile.LNKTYPE)], "is a link"),
        ([_link("train/fifo", "", tarfile.FIFOTYPE)], "device or a pipe"),
        ([("train/a.jpg", b"x"), ("train/a.jpg", b"y")], "appears twice"),
    ],
)
def test_hostile_tars_are_refused_before_anything_is_written(tmp_path: Path, entries: list, message: str) -> None:
    tar = _tar(tmp_path / "hostile.tar", [("train/ok.jpg", b"fine")] + entries)
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match=message):
        extract_archive(tar, dest)
    assert not dest.exists() or not any(dest.rglob("*"))
    assert not (tmp_path / "escape.jpg").exists()


def test_tar_limits_files_bytes_and_inflation(tmp_path: Path) -> None:
    many = _tar(tmp_path / "many.tar", [(f"f{i}.txt", b"x") for i in range(6)])
    with pytest.raises(ArchiveError, match="more than 5 files"):
        extract_archive(many, tmp_path / "a", max_files=5)
    big = _tar(tmp_path / "big.tar", [("a.bin", b"\x01" * 3000), ("b.bin", b"\x02" * 3000)])
    with pytest.raises(ArchiveError, match="unpacks to more than"):
        extract_archive(big, tmp_path / "b", max_total_bytes=5000)
    bomb = _tar(tmp_path / "bomb.tar.gz", [("zeros.bin", bytes(20 * MB))], "w:gz")
    with pytest.raises(ArchiveError, match="possible archive bomb"):
        extract_archive(bomb, tmp_path / "c")
    assert not (tmp_path / "c").exists()
    ok = extract_archive(many, tmp_path / "d")
    assert [p.name for p in ok.files] == [f"f{i}.txt" for i in range(6)]


def test_a_file_neither_zip_nor_tar_is_still_not_a_zip_archive(tmp_path: Path) -> None:
    fake = tmp_path / "photos.zip"
    fake.write_bytes(b"\xff\xd8\xff\xe0 a jpeg, not an archive")
    with pytest.raises(ArchiveError, match="photos.zip is not a zip archive"):
        extract_archive(fake, tmp_path / "out")
    truncated = _tar(tmp_path / "cut.tar.gz", _photos(1), "w:gz")
    truncated.write_bytes(truncated.read_bytes()[:-4000])
    with pytest.raises(ArchiveError, match="damaged tar archive"):
        extract_archive(truncated, tmp_path / "out2")


@pytest.mark.parametrize("format_", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
def test_a_huge_extended_header_is_refused_without_reading_it(tmp_path: Path, format_: int) -> None:
    # tarfile reads a long name (GNU) or a pax record whole before any check sees the member: 20 MB of name
    # compresses to a few KB, so a small upload could otherwise hold gigabytes.
    archive = tmp_path / "bomb.tar.gz"
    with tarfile.open(archive, "w:gz", format=format_) as tar:
        info = tarfile.TarInfo("train/ants/" + "a" * (20 * MB) + ".jpg")
        tar.addfile(info, io.BytesIO(b""))
    assert archive.stat().st_size < MB
    with pytest.raises(ArchiveError, match="header of .* bytes"):
        extract_archive(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_damaged_xz_tar_is_a_clear_error(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "photos.tar.xz", _photos(2), "w:xz")
    data = bytearray(archive.read_bytes())
    middle = len(data) // 2
    data[middle:middle + 64] = bytes(b ^ 0xFF for b in data[middle:middle + 64])
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="damaged tar archive"):
        extract_archive(archive, tmp_path / "out")
