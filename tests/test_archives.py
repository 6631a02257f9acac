"""safe_extract: hostile zips are refused before anything lands outside the target; clean ones extract exactly."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import pytest

from visiontrain.data.archives import ArchiveError, extract_zip, iter_images, safe_extract

MB = 1024 * 1024


def _zip(path: Path, entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return path


def _forge_uncompressed_size(path: Path, new_size: int) -> None:
    """Rewrite the single entry's declared uncompressed size in both its local and central headers."""
    data = bytearray(path.read_bytes())
    local = data.index(b"PK\x03\x04")
    central = data.index(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, new_size)
    struct.pack_into("<I", data, central + 24, new_size)
    path.write_bytes(bytes(data))


def test_clean_archive_extracts_all_files_and_skips_system_clutter(tmp_path: Path) -> None:
    archive = _zip(
        tmp_path / "ok.zip",
        {
            "data/a.txt": b"alpha",
            "data/sub/b.bin": bytes(range(256)),
            "__MACOSX/data/._a.txt": b"resource fork",
            "data/.DS_Store": b"finder",
            "data/.hidden/c.txt": b"hidden",
        },
    )
    result = extract_zip(archive, tmp_path / "out")
    out = (tmp_path / "out").resolve()
    assert result.files == [out / "data" / "a.txt", out / "data" / "sub" / "b.bin"]
    assert (out / "data" / "a.txt").read_bytes() == b"alpha"
    assert (out / "data" / "sub" / "b.bin").read_bytes() == bytes(range(256))
    assert sorted(result.skipped) == ["__MACOSX/data/._a.txt", "data/.DS_Store", "data/.hidden/c.txt"]
    assert not (out / "__MACOSX").exists()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../evil.txt", "outside the archive"),
        ("data/../../evil.txt", "outside the archive"),
        ("/etc/evil.txt", "absolute path"),
        ("C:/Windows/evil.txt", "absolute path"),
        ("data\\..\\..\\evil.txt", "backslashes"),
    ],
)
def test_entry_names_that_escape_the_target_are_refused(tmp_path: Path, name: str, message: str) -> None:
    archive = _zip(tmp_path / "evil.zip", {"fine.txt": b"ok", name: b"payload"})
    with pytest.raises(ArchiveError, match=message):
        safe_extract(archive, tmp_path / "out" / "inner")
    # Headers are checked before writing: not even the harmless entry was extracted.
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_entry_is_refused(tmp_path: Path) -> None:
    info = zipfile.ZipInfo("link")
    info.create_system = 3
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as archive:
        archive.writestr("images/a.txt", b"ok")
        archive.writestr(info, "/etc/passwd")
    with pytest.raises(ArchiveError, match="symbolic link"):
        safe_extract(tmp_path / "link.zip", tmp_path / "out")
    assert not (tmp_path / "out" / "link").exists()


def test_encrypted_entry_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "locked.zip", {"secret.txt": b"x" * 100})
    data = bytearray(archive.read_bytes())
    # Set the "encrypted" general-purpose flag bit in both headers (zipfile cannot write encrypted zips).
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        position = data.index(signature) + offset
        struct.pack_into("<H", data, position, struct.unpack_from("<H", data, position)[0] | 0x1)
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="encrypted"):
        safe_extract(archive, tmp_path / "out")


def test_not_a_zip_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "photos.zip"
    fake.write_bytes(b"\xff\xd8\xff\xe0 this is a jpeg, not a zip")
    with pytest.raises(ArchiveError, match="not a zip archive"):
        safe_extract(fake, tmp_path / "out")


def test_zip_bomb_is_refused_by_its_compression_ratio(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "bomb.zip", {"zeros.bin": bytes(4 * MB)})
    assert archive.stat().st_size < 40_000  # ~1000:1, a real bomb's signature
    with pytest.raises(ArchiveError, match="zip bomb"):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_total_size_and_file_count_limits(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "many.zip", {f"f{i}.txt": b"x" * 1000 for i in range(5)})
    with pytest.raises(ArchiveError, match="5 files; the limit is 4"):
        safe_extract(archive, tmp_path / "a", max_files=4)
    with pytest.raises(ArchiveError, match="unpacks to"):
        safe_extract(archive, tmp_path / "b", max_total_bytes=4999)
    assert len(safe_extract(archive, tmp_path / "c", max_files=5, max_total_bytes=5000)) == 5


def test_header_declaring_less_than_the_payload_is_refused(tmp_path: Path) -> None:
    # 4 MB of zeros whose headers claim 1000 bytes: the declared-size checks pass, the content does not.
    archive = _zip(tmp_path / "liar.zip", {"zeros.bin": bytes(4 * MB)})
    _forge_uncompressed_size(archive, 1000)
    with pytest.raises(ArchiveError, match="does not match its header"):
        safe_extract(archive, tmp_path / "out", max_total_bytes=10_000)


def test_header_declaring_more_than_the_payload_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "liar.zip", {"data.bin": b"abc" * 1000}, compression=zipfile.ZIP_STORED)
    _forge_uncompressed_size(archive, 9000)
    with pytest.raises(ArchiveError, match="declares 9000"):
        safe_extract(archive, tmp_path / "out")


def test_file_and_folder_of_the_same_name_collide(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "clash.zip", {"data": b"a file", "data/inner.txt": b"a file in a folder"})
    with pytest.raises(ArchiveError, match="collides with another entry"):
        safe_extract(archive, tmp_path / "out")


def test_unsupported_compression_method_is_refused(tmp_path: Path) -> None:
    archive = _zip(tmp_path / "d64.zip", {"a.txt": b"x" * 100})
    data = bytearray(archive.read_bytes())
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        struct.pack_into("<H", data, data.index(signature) + offset, 9)  # Deflate64, which zipfile cannot read
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="compression method 9"):
        safe_extract(archive, tmp_path / "out")


def test_iter_images_finds_images_by_extension_and_skips_hidden(tmp_path: Path) -> None:
    for name in ["b/2.JPG", "b/1.png", "a.jpeg", "notes.txt", ".hidden/x.jpg", "__MACOSX/y.jpg", "b/.z.jpg"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in iter_images(tmp_path)]
    assert found == ["a.jpeg", "b/1.png", "b/2.JPG"]
