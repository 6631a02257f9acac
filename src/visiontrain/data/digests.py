"""A file's identity by content (sha256): the feature cache, the split and the ONNX export's checkpoint link use it."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path


def file_sha256(path: Path) -> str:
    """The sha256 of the file's bytes. Remembered per (path, size, modification time): a run hashes each
    image for its split and again for the feature cache, and a file changed since is read afresh."""
    stat = Path(path).stat()
    return _sha256(str(Path(path).absolute()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=65_536)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
