"""Reading multipart uploads within the configured size limit, without holding what is refused.

Starlette spools each uploaded file to a temporary file as the body streams in (at most 1 MB of it in
memory). An image upload is then checked from its first bytes (an accepted raster format, see
:func:`visiontrain.data.images.sniff_format`) and its size before it is read into memory: a 500 MB
file that is not an image costs 32 bytes of reading. Archives are copied to a working directory under
the data directory (``<data>/tmp``), which start-up sweeps when a killed process left one behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import UploadFile

from visiontrain.data.errors import ImageError
from visiontrain.data.images import SNIFF_BYTES, sniff_format
from visiontrain.services.errors import BadFile, InvalidInput, PayloadTooLarge
from visiontrain.services.images import MAX_NAME_LENGTH

if TYPE_CHECKING:
    from visiontrain.config import ServerConfig

_CHUNK = 1024 * 1024
UPLOAD_DIR_PREFIX = "upload-"


def upload_name(upload: UploadFile, default: str = "upload", *, index: int | None = None) -> str:
    """The client's file name, for messages and records; NUL refused, very long names shortened."""
    name = upload.filename or default
    if "\x00" in name:
        loc = ("body", "files", index) if index is not None else ("body", "file")
        raise InvalidInput("the file name contains a NUL character; rename the file", loc=loc)
    if len(name) > MAX_NAME_LENGTH:
        name = name[: MAX_NAME_LENGTH - 3] + "..."
    return name


def _too_large(name: str, size: int, limit_mb: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"{name}: {size / 1024 / 1024:.1f} MB is larger than the {limit_mb} MB upload limit "
        "(the server's VISIONTRAIN_MAX_UPLOAD_MB)"
    )


def read_upload(upload: UploadFile, *, limit_mb: int, index: int | None = None) -> tuple[str, bytes]:
    """The file's name and bytes, once its first bytes show an accepted image format and it is within
    the limit: 400 naming the format otherwise, 413 naming the limit; nothing else is read first."""
    name = upload_name(upload, index=index)
    limit = limit_mb * 1024 * 1024
    stream = upload.file
    stream.seek(0)
    head = stream.read(SNIFF_BYTES)
    try:
        sniff_format(head)
    except ImageError as exc:
        raise BadFile(name, str(exc)) from None
    size = stream.seek(0, os.SEEK_END)
    if size > limit:
        raise _too_large(name, size, limit_mb)
    stream.seek(0)
    return name, stream.read()


def save_upload(upload: UploadFile, directory: Path, *, limit_mb: int) -> Path:
    """Copy an upload (an archive) to a file in ``directory`` without holding it in memory."""
    limit = limit_mb * 1024 * 1024
    name = upload_name(upload, "archive.zip")
    fd, raw_path = tempfile.mkstemp(dir=directory, suffix=".zip")
    target = Path(raw_path)
    written = 0
    upload.file.seek(0)
    with os.fdopen(fd, "wb") as out:  # the descriptor mkstemp opened, closed here (it used to leak)
        while chunk := upload.file.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise _too_large(name, upload.file.seek(0, os.SEEK_END), limit_mb)
            out.write(chunk)
    return target


def temporary_directory(config: ServerConfig | None = None) -> Path:
    """A private working directory for one request: under ``<data>/tmp`` (swept at start-up) with a
    config, else the system's temporary directory. Its name carries this process's id."""
    parent = None
    if config is not None:
        config.tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        parent = config.tmp_dir
    return Path(tempfile.mkdtemp(prefix=f"{UPLOAD_DIR_PREFIX}{os.getpid()}-", dir=parent))


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


# --- what a killed process left behind

PROCESS_LOCK_PREFIX = "api-"


class ProcessRegistry:
    """Each API app holds an exclusive lock on ``<data>/tmp/api-<pid>-<random>.lock`` while it runs, so that
    another one starting can tell live processes (lock held) from killed ones (lock free: the kernel
    drops a killed process's locks) without trusting process ids."""

    def __init__(self, tmp_dir: Path):
        import fcntl

        self.tmp_dir = tmp_dir
        tmp_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.path = tmp_dir / f"{PROCESS_LOCK_PREFIX}{os.getpid()}-{os.urandom(4).hex()}.lock"
        self._handle = open(self.path, "w")  # noqa: SIM115 - held for the process's life
        fcntl.flock(self._handle, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def live_others(self) -> set[int]:
        """Process ids of the other API processes of this data directory that are running now."""
        import fcntl

        live = set()
        for lock in self.tmp_dir.glob(f"{PROCESS_LOCK_PREFIX}*.lock"):
            pid = lock.stem[len(PROCESS_LOCK_PREFIX):].split("-", 1)[0]
            if lock == self.path or pid == str(os.getpid()):
                continue
            try:
                with open(lock, "a") as handle:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live.add(int(pid) if pid.isdigit() else -1)
                continue
            except OSError:
                continue
            lock.unlink(missing_ok=True)  # its process is gone
        return live

    def close(self) -> None:
        self._handle.close()
        self.path.unlink(missing_ok=True)


def sweep_upload_dirs(tmp_dir: Path, *, live: set[int]) -> int:
    """Remove working directories of processes that are no longer running; returns how many."""
    removed = 0
    if not tmp_dir.is_dir():
        return 0
    for directory in tmp_dir.glob(f"{UPLOAD_DIR_PREFIX}*"):
        pid = directory.name[len(UPLOAD_DIR_PREFIX):].split("-", 1)[0]
        if not directory.is_dir() or (pid.isdigit() and (int(pid) in live or int(pid) == os.getpid())):
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed += 1
    return removed
