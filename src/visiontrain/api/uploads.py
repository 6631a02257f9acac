"""Reading multipart uploads within the configured size limit."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from fastapi import UploadFile

from visiontrain.services.errors import PayloadTooLarge

_CHUNK = 1024 * 1024


def read_upload(upload: UploadFile, *, limit_mb: int) -> tuple[str, bytes]:
    """The file's name and bytes; 413 when it is larger than the limit."""
    limit = limit_mb * 1024 * 1024
    data = upload.file.read(limit + 1)
    name = upload.filename or "upload"
    if len(data) > limit:
        raise PayloadTooLarge(f"{name}: larger than the {limit_mb} MB upload limit (VISIONTRAIN_MAX_UPLOAD_MB)")
    return name, data


def save_upload(upload: UploadFile, directory: Path, *, limit_mb: int) -> Path:
    """Copy an upload (an archive) to a file in ``directory`` without holding it in memory."""
    limit = limit_mb * 1024 * 1024
    target = Path(tempfile.mkstemp(dir=directory, suffix=".zip")[1])
    written = 0
    with target.open("wb") as out:
        while chunk := upload.file.read(_CHUNK):
            written += len(chunk)
            if written > limit:
                raise PayloadTooLarge(
                    f"{upload.filename or 'upload'}: larger than the {limit_mb} MB upload limit (VISIONTRAIN_MAX_UPLOAD_MB)"
                )
            out.write(chunk)
    return target


def temporary_directory() -> Path:
    return Path(tempfile.mkdtemp(prefix="visiontrain-upload-"))


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
