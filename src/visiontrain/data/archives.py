"""Extracting user-uploaded zip and tar archives without trusting them.

An uploaded archive is hostile until proven otherwise: entry names may climb out of the target
folder (``../``, absolute paths, drive letters, backslashes), entries may be symlinks pointing
anywhere, headers may declare small sizes for huge payloads, and a few kilobytes may inflate to
gigabytes. :func:`safe_extract` checks every entry's header before writing a byte, then counts the
bytes actually written, so neither the declared sizes nor the decompressor are taken on faith.
:func:`extract_archive` does the same for tar files (plain, gzip, bzip2, xz), where links, devices
and pipes are refused as well. Entries are copied 1 MB at a time: memory does not grow with an entry
or with the archive.
"""

from __future__ import annotations

import lzma
import os
import re
import stat
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from visiontrain.data.errors import DataError
from visiontrain.data.images import IMAGE_EXTENSIONS

GIB = 1024**3
DEFAULT_MAX_FILES = 100_000
DEFAULT_MAX_TOTAL_BYTES = 4 * GIB
DEFAULT_MAX_RATIO = 200
# Tiny files compress absurdly well (a 50 kB blank mask, a JSON of zeros): the ratio test only
# applies to entries (and archives) that inflate to at least this much.
RATIO_MIN_BYTES = 1024 * 1024
_CHUNK = 1024 * 1024
_DRIVE_LETTER = re.compile(r"^[A-Za-z]:")
# Operating-system clutter that is never part of a dataset.
_JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini"})
_SUPPORTED_COMPRESSION = {
    zipfile.ZIP_STORED: "stored",
    zipfile.ZIP_DEFLATED: "deflate",
    zipfile.ZIP_BZIP2: "bzip2",
    zipfile.ZIP_LZMA: "lzma",
}


class ArchiveError(DataError):
    """An archive (or dataset inside it) that cannot be imported; the message says what and why."""


@dataclass
class Extraction:
    """What :func:`extract_zip` wrote, and the system clutter it left out (``__MACOSX/``, dotfiles)."""

    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def safe_extract(
    zip_path: Path,
    dest: Path,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> list[Path]:
    """Extract ``zip_path`` into ``dest`` and return the written files (sorted); see :func:`extract_zip`."""
    return extract_zip(
        zip_path, dest, max_files=max_files, max_total_bytes=max_total_bytes, max_ratio=max_ratio
    ).files


def extract_zip(
    zip_path: Path,
    dest: Path,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> Extraction:
    """Extract ``zip_path`` into ``dest`` (created if needed), refusing anything unsafe.

    Raises :class:`ArchiveError` when the file is not a zip, an entry's name would land outside
    ``dest``, an entry is a symlink or encrypted, there are more than ``max_files`` files, the
    content exceeds ``max_total_bytes`` or inflates more than ``max_ratio`` times (a zip bomb), or
    an entry's content does not match its header. Nothing is extracted when a header check fails;
    a failure while writing leaves the partial output in ``dest`` for the caller to remove.
    """
    zip_path = Path(zip_path)
    if not zip_path.is_file():
        raise ArchiveError(f"{zip_path.name}: no such file")
    if not zipfile.is_zipfile(zip_path):
        raise ArchiveError(f"{zip_path.name} is not a zip archive")
    try:
        with zipfile.ZipFile(zip_path) as archive:
            entries, skipped = _checked_entries(
                archive.infolist(), zip_path.name, max_files, max_total_bytes, max_ratio
            )
            dest.mkdir(parents=True, exist_ok=True)
            files = _write_entries(archive, entries, dest.resolve(), zip_path.name, max_total_bytes)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"{zip_path.name} is a damaged zip archive ({exc})") from None
    return Extraction(files=sorted(files), skipped=skipped)


def extract_archive(
    archive_path: Path,
    dest: Path,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> Extraction:
    """A zip (:func:`extract_zip`) or a tar archive (:func:`extract_tar`), told apart by their bytes;
    anything else is refused as not a zip archive."""
    archive_path = Path(archive_path)
    if archive_path.is_file() and not zipfile.is_zipfile(archive_path) and _is_tar(archive_path):
        return extract_tar(archive_path, dest, max_files=max_files, max_total_bytes=max_total_bytes, max_ratio=max_ratio)
    return extract_zip(archive_path, dest, max_files=max_files, max_total_bytes=max_total_bytes, max_ratio=max_ratio)


# A long name or a pax header is read whole by tarfile before any member is seen: without a bound, a
# small compressed archive could hold one of gigabytes.
MAX_TAR_EXTENDED_HEADER_BYTES = 64 * 1024


class _BoundedTarInfo(tarfile.TarInfo):
    """tarfile's member header, refusing extended headers (GNU long names, pax records) over the bound."""

    def _bounded(self, kind: str) -> None:
        if self.size > MAX_TAR_EXTENDED_HEADER_BYTES:
            raise ArchiveError(
                f"a tar {kind} header of {self.size:,} bytes (at most {MAX_TAR_EXTENDED_HEADER_BYTES:,}): not a dataset archive"
            )

    def _proc_gnulong(self, tarfile):  # type: ignore[no-untyped-def,override]
        self._bounded("long-name")
        return super()._proc_gnulong(tarfile)  # type: ignore[misc]

    def _proc_pax(self, tarfile):  # type: ignore[no-untyped-def,override]
        self._bounded("pax")
        return super()._proc_pax(tarfile)  # type: ignore[misc]


def _open_tar(path: Path) -> tarfile.TarFile:
    return tarfile.open(path, "r:*", tarinfo=_BoundedTarInfo)


# What a damaged or truncated archive raises from tarfile and its decompressors.
_DAMAGED = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError, ValueError)


def _is_tar(path: Path) -> bool:
    try:
        with _open_tar(path):
            return True
    except ArchiveError:
        raise
    except _DAMAGED:
        return False


def extract_tar(
    tar_path: Path,
    dest: Path,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_ratio: float = DEFAULT_MAX_RATIO,
) -> Extraction:
    """Extract a tar archive (plain or compressed) into ``dest`` with the rules of :func:`extract_zip`:
    every header is read and checked first (names, links, devices, count, sizes, inflation against the
    file's size), nothing is written when one fails; then the files are copied, their bytes counted."""
    tar_path = Path(tar_path)
    name = tar_path.name
    try:
        with _open_tar(tar_path) as archive:
            entries, skipped = _checked_tar_entries(archive, name, tar_path.stat().st_size, max_files, max_total_bytes, max_ratio)
        dest.mkdir(parents=True, exist_ok=True)
        wanted = {member_name: relative for member_name, relative in entries}
        files: list[Path] = []
        root = dest.resolve()
        written_total = 0
        with _open_tar(tar_path) as archive:
            for member in archive:
                relative = wanted.get(member.name) if member.isfile() else None
                if relative is None:
                    continue
                source = archive.extractfile(member)
                if source is None:  # pragma: no cover - a regular file always has a stream
                    continue
                written = _copy_entry(source, root, relative, member.name, member.size, name, max_total_bytes - written_total)
                written_total += written
                files.append(root.joinpath(*relative.parts))
                del wanted[member.name]
    except _DAMAGED as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"{name} is a damaged tar archive, or an entry cannot be written ({exc})") from None
    return Extraction(files=sorted(files), skipped=skipped)


def _checked_tar_entries(
    archive: tarfile.TarFile, archive_name: str, archive_bytes: int, max_files: int, max_total_bytes: int,
    max_ratio: float,
) -> tuple[list[tuple[str, PurePosixPath]], list[str]]:
    entries: list[tuple[str, PurePosixPath]] = []
    skipped: list[str] = []
    seen: set[str] = set()
    declared_total = 0
    for member in archive:
        relative = _safe_relative_path(member.name, archive_name)
        if member.issym() or member.islnk():
            raise ArchiveError(f"{archive_name}: entry {member.name!r} is a link; links are not accepted")
        if member.isdir() or relative is None:
            continue
        if not member.isfile():
            raise ArchiveError(f"{archive_name}: entry {member.name!r} is a device or a pipe, not a file; refusing it")
        if _is_clutter(relative):
            skipped.append(relative.as_posix())
            continue
        key = relative.as_posix()
        if key in seen:
            raise ArchiveError(f"{archive_name}: entry {key!r} appears twice")
        seen.add(key)
        declared_total += member.size
        if len(entries) >= max_files:
            raise ArchiveError(f"{archive_name} holds more than {max_files} files; the limit is {max_files}")
        if declared_total > max_total_bytes:
            raise ArchiveError(
                f"{archive_name} unpacks to more than {max_total_bytes / 1e6:.1f} MB; the limit is {max_total_bytes / 1e6:.1f} MB"
            )
        entries.append((member.name, relative))
    # A compressed tar has no per-entry compressed size: the whole archive is held to the ratio.
    if declared_total >= RATIO_MIN_BYTES and declared_total > max_ratio * max(archive_bytes, 1):
        raise ArchiveError(
            f"{archive_name} inflates {declared_total / max(archive_bytes, 1):.0f} times "
            f"(the limit is {max_ratio:g}): refusing a possible archive bomb"
        )
    return entries, skipped


def _copy_entry(
    source, root: Path, relative: PurePosixPath, entry_name: str, declared: int, archive_name: str, budget: int  # type: ignore[no-untyped-def]
) -> int:
    """Copy one entry 1 MB at a time, refusing more bytes than its header declares or the budget left."""
    target = root.joinpath(*relative.parts)
    if not target.resolve().is_relative_to(root):
        raise ArchiveError(f"{archive_name}: entry {entry_name!r} points outside the archive; refusing it")
    written = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "xb") as sink:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > declared or written > budget:
                    raise ArchiveError(
                        f"{archive_name}: entry {entry_name!r} holds more data than its header declares "
                        f"({declared} bytes); refusing a forged archive"
                    )
                sink.write(chunk)
    except (FileExistsError, IsADirectoryError, NotADirectoryError):
        raise ArchiveError(
            f"{archive_name}: entry {entry_name!r} collides with another entry (a file and a folder of the same name)"
        ) from None
    if written != declared:
        raise ArchiveError(
            f"{archive_name}: entry {entry_name!r} holds {written} bytes but its header declares {declared}; "
            "refusing a damaged or forged archive"
        )
    return written


def _checked_entries(
    infos: list[zipfile.ZipInfo], archive_name: str, max_files: int, max_total_bytes: int, max_ratio: float
) -> tuple[list[tuple[zipfile.ZipInfo, PurePosixPath]], list[str]]:
    """Validate every header up front; return (file entry, safe relative path) pairs and the skipped names."""
    entries: list[tuple[zipfile.ZipInfo, PurePosixPath]] = []
    skipped: list[str] = []
    seen: set[str] = set()
    declared_total = 0
    compressed_total = 0
    for info in infos:
        relative = _safe_relative_path(info.filename, archive_name)
        if _is_symlink(info):
            raise ArchiveError(f"{archive_name}: entry {info.filename!r} is a symbolic link; links are not accepted")
        if info.flag_bits & 0x1:
            raise ArchiveError(
                f"{archive_name}: entry {info.filename!r} is encrypted; upload an archive without a password"
            )
        if info.is_dir() or relative is None:
            continue
        if info.compress_type not in _SUPPORTED_COMPRESSION:
            raise ArchiveError(
                f"{archive_name}: entry {info.filename!r} uses compression method {info.compress_type}, which is "
                f"not supported ({', '.join(_SUPPORTED_COMPRESSION.values())} are); re-create the archive with a "
                "standard zip tool"
            )
        if _is_clutter(relative):
            skipped.append(relative.as_posix())
            continue
        key = relative.as_posix()
        if key in seen:
            raise ArchiveError(f"{archive_name}: entry {key!r} appears twice")
        seen.add(key)
        if info.file_size >= RATIO_MIN_BYTES and info.file_size > max_ratio * max(info.compress_size, 1):
            raise ArchiveError(
                f"{archive_name}: entry {key!r} inflates {info.file_size / max(info.compress_size, 1):.0f} times "
                f"(the limit is {max_ratio:g}): refusing a possible zip bomb"
            )
        declared_total += info.file_size
        compressed_total += info.compress_size
        entries.append((info, relative))
    if len(entries) > max_files:
        raise ArchiveError(f"{archive_name} holds {len(entries)} files; the limit is {max_files}")
    if declared_total > max_total_bytes:
        raise ArchiveError(
            f"{archive_name} unpacks to {declared_total / 1e6:.1f} MB; the limit is {max_total_bytes / 1e6:.1f} MB"
        )
    if declared_total >= RATIO_MIN_BYTES and declared_total > max_ratio * max(compressed_total, 1):
        raise ArchiveError(
            f"{archive_name} inflates {declared_total / max(compressed_total, 1):.0f} times "
            f"(the limit is {max_ratio:g}): refusing a possible zip bomb"
        )
    return entries, skipped


def _safe_relative_path(name: str, archive_name: str) -> PurePosixPath | None:
    """The entry's path relative to the target folder, or ArchiveError if it could escape it."""
    if "\\" in name:
        raise ArchiveError(f"{archive_name}: entry {name!r} uses backslashes in its path; refusing it "
            "(re-create the archive with a standard zip tool)")
    if "\x00" in name:
        raise ArchiveError(f"{archive_name}: entry {name!r} has a NUL character in its name")
    if name.startswith("/") or _DRIVE_LETTER.match(name):
        raise ArchiveError(f"{archive_name}: entry {name!r} has an absolute path; refusing it")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ArchiveError(f"{archive_name}: entry {name!r} points outside the archive ('..'); refusing it")
    return PurePosixPath(*parts) if parts else None


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    # Unix zip tools keep the st_mode in the high 16 bits of the external attributes.
    return stat.S_ISLNK(info.external_attr >> 16)


def _is_clutter(relative: PurePosixPath) -> bool:
    return (
        relative.parts[0] == "__MACOSX"
        or any(part.startswith(".") for part in relative.parts)
        or relative.name in _JUNK_NAMES
    )


def _write_entries(
    archive: zipfile.ZipFile,
    entries: list[tuple[zipfile.ZipInfo, PurePosixPath]],
    dest: Path,
    archive_name: str,
    max_total_bytes: int,
) -> list[Path]:
    """Write each entry, counting real bytes: a header that under-declares its size is caught here."""
    written_total = 0
    files: list[Path] = []
    for info, relative in entries:
        target = dest.joinpath(*relative.parts)
        # Belt and braces: the name checks above already exclude escapes.
        if not target.resolve().is_relative_to(dest):
            raise ArchiveError(f"{archive_name}: entry {info.filename!r} points outside the archive; refusing it")
        written = 0
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, open(target, "xb") as sink:
                while chunk := source.read(_CHUNK):
                    written += len(chunk)
                    written_total += len(chunk)
                    if written > info.file_size or written_total > max_total_bytes:
                        raise ArchiveError(
                            f"{archive_name}: entry {info.filename!r} holds more data than its header declares "
                            f"({info.file_size} bytes); refusing a forged archive"
                        )
                    sink.write(chunk)
        except (FileExistsError, IsADirectoryError, NotADirectoryError):
            raise ArchiveError(
                f"{archive_name}: entry {info.filename!r} collides with another entry "
                "(a file and a folder of the same name)"
            ) from None
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise ArchiveError(
                f"{archive_name}: entry {info.filename!r} is damaged or does not match its header ({exc})"
            ) from None
        except OSError as exc:
            reason = exc.strerror or exc
            raise ArchiveError(f"{archive_name}: cannot write entry {info.filename!r} ({reason})") from None
        if written != info.file_size:
            raise ArchiveError(
                f"{archive_name}: entry {info.filename!r} holds {written} bytes but its header declares "
                f"{info.file_size}; refusing a damaged or forged archive"
            )
        files.append(target)
    return files


def iter_images(directory: Path) -> Iterator[Path]:
    """Image files under ``directory`` by extension, folder by folder in sorted order; hidden and ``__MACOSX`` skipped.

    Symlinked folders are not followed (a loop or a link out of the upload must not be read).
    Files are not decoded here: see :func:`visiontrain.data.images.open_image`.
    """
    for current, dirs, names in os.walk(directory, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__MACOSX")
        for name in sorted(names):
            path = Path(current, name)
            if not name.startswith(".") and path.suffix.lower() in IMAGE_EXTENSIONS and not path.is_symlink():
                yield path
