"""Stored files as download responses, whatever the store: a local file is sent as it is (sendfile, ranges);
an object store's is streamed through in chunks, so a large checkpoint never has to fit in memory or wait
for a whole copy on this machine's disk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO
from urllib.parse import quote

from fastapi.responses import FileResponse, StreamingResponse
from starlette.responses import Response

from visiontrain.blobs import BlobStore, LocalBlobStore

CHUNK_BYTES = 1024 * 1024


def _chunks(stream: IO[bytes]) -> Iterator[bytes]:
    try:
        while chunk := stream.read(CHUNK_BYTES):
            yield chunk
    finally:
        stream.close()


def content_disposition(filename: str) -> str:
    """``attachment`` with the name, RFC 5987-encoded when it is not plain ASCII (as FileResponse writes it)."""
    quoted = quote(filename)
    if quoted != filename:
        return f"attachment; filename*=utf-8''{quoted}"
    return f'attachment; filename="{filename}"'


def blob_download(blobs: BlobStore, key: str, *, media_type: str, filename: str) -> Response:
    """The key's bytes as a download named ``filename``; BlobNotFound (a 500 naming the key) when they are gone."""
    if isinstance(blobs, LocalBlobStore):
        return FileResponse(blobs.local_path(key), media_type=media_type, filename=filename)
    size = blobs.size(key)  # before the first byte is sent, so a missing object is still an error response
    return StreamingResponse(
        _chunks(blobs.open(key)),
        media_type=media_type,
        headers={"Content-Length": str(size), "Content-Disposition": content_disposition(filename)},
    )
