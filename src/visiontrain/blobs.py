"""Byte storage behind one small interface: images, checkpoints and exports.

Chosen by URL (:func:`open_blob_store`): ``file:///path`` (or a plain path) is a local directory, the
embedded default. An object store (S3-compatible) can be added as another scheme without touching
callers. Keys are relative, ``/``-separated paths such as ``images/ab/<sha256>.jpg``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import Iterator
from typing import Protocol
from urllib.parse import unquote, urlparse


class BlobNotFound(KeyError):
    """No bytes are stored under this key."""


class BlobStore(Protocol):
    url: str

    def put_bytes(self, key: str, data: bytes) -> None: ...

    def put_file(self, key: str, source: Path) -> None: ...

    def get_bytes(self, key: str) -> bytes: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def local_path(self, key: str) -> Path:
        """A readable file with the key's bytes (the file itself for a local store, a cached copy otherwise)."""
        ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key that starts with ``prefix``; returns how many."""
        ...

    def keys(self, folder: str) -> Iterator[str]:
        """Every key under ``folder`` (a top-level folder such as ``images``), in no order."""
        ...

    def remove_partial_writes(self) -> int:
        """Delete what writes interrupted by a crash left (never a stored key); returns how many."""
        ...


# Writes go to a temporary file with this prefix in the target's folder, then are renamed.
_PARTIAL_PREFIX = ".tmp-"


class LocalBlobStore:
    """A directory on this machine; writes are atomic (temporary file, then rename)."""

    def __init__(self, root: str | Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        parts = key.split("/")
        if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\\" in key:
            raise ValueError(f"invalid blob key {key!r}")
        return self.root.joinpath(*parts)

    def put_bytes(self, key: str, data: bytes) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_PARTIAL_PREFIX)
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_file(self, key: str, source: Path) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_PARTIAL_PREFIX)
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def get_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            raise BlobNotFound(key) from None

    def local_path(self, key: str) -> Path:
        path = self._path(key)
        if not path.is_file():
            raise BlobNotFound(key)
        return path

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> int:
        folder, _, start = prefix.rpartition("/")
        directory = self._path(folder) if folder else self.root
        if not directory.is_dir():
            return 0
        doomed = [p for p in directory.iterdir() if p.is_file() and p.name.startswith(start)]
        for path in doomed:
            path.unlink(missing_ok=True)
        return len(doomed)

    def keys(self, folder: str) -> Iterator[str]:
        directory = self._path(folder)
        if not directory.is_dir():
            return
        for path in directory.rglob("*"):
            if path.is_file() and not path.name.startswith(_PARTIAL_PREFIX):
                yield path.relative_to(self.root).as_posix()

    def remove_partial_writes(self) -> int:
        removed = 0
        for path in self.root.rglob(_PARTIAL_PREFIX + "*"):
            if path.is_file():
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def open_blob_store(url: str) -> BlobStore:
    """The store for ``url``: ``file:///dir`` or a plain directory path."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme == "file" else url
        if not path:
            raise ValueError(f"blob URL {url!r} names no directory")
        return LocalBlobStore(path)
    raise ValueError(
        f"unsupported blob storage URL scheme {parsed.scheme!r} in {url!r}: use file:///path/to/dir (or a plain path)"
    )
