"""Artifact downloads on both byte stores: a local file sent as it is, an S3 object streamed through in chunks;
bytes gone from the store and a store that stopped answering are clear errors, not tracebacks."""

from __future__ import annotations

import hashlib
import io
import os
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from platform_support import annotated_classification_view
from visiontrain.services.platform import Platform
from visiontrain.store.models import Artifact

TINY = {"epochs": 2, "augmented_copies": 0, "image_size": 96, "batch_size": 8}
BOTH = pytest.mark.parametrize("blob_backend", ["local", "s3"])


def _version_with_artifacts(client: TestClient, platform: Platform, files, tmp_path: Path) -> tuple[int, dict[str, bytes]]:  # type: ignore[no-untyped-def]
    """A queued version holding a 3 MiB checkpoint (several chunks) and a PNG made from a real photo."""
    _, _, model = annotated_classification_view(client, files)
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"name": "v1", "settings": TINY}).json()
    picture = io.BytesIO()
    with Image.open(files["ants"][0]) as photo:
        photo.convert("RGB").save(picture, format="PNG")
    contents = {"checkpoint": os.urandom(3 * 1024 * 1024 + 17), "confusion_matrix": picture.getvalue()}
    with platform.sessions() as session:
        for kind, data in contents.items():
            key = f"versions/{version['id']}/{kind}"
            source = tmp_path / kind
            source.write_bytes(data)
            platform.blobs.put_file(key, source)
            session.add(Artifact(version_id=version["id"], kind=kind, blob_key=key, size_bytes=len(data)))
        session.commit()
    return version["id"], contents


@BOTH
def test_artifacts_download_whole_with_their_name_and_type(client, platform, ant_and_bee_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    version_id, contents = _version_with_artifacts(client, platform, ant_and_bee_files, tmp_path)
    checkpoint = client.get(f"/api/v1/versions/{version_id}/artifacts/checkpoint")
    assert checkpoint.status_code == 200
    assert hashlib.sha256(checkpoint.content).digest() == hashlib.sha256(contents["checkpoint"]).digest()
    assert checkpoint.headers["content-length"] == str(len(contents["checkpoint"]))
    assert checkpoint.headers["content-type"] == "application/octet-stream"
    assert checkpoint.headers["content-disposition"] == 'attachment; filename="species-v1-best.pt"'
    assert client.get(f"/api/v1/versions/{version_id}/export/checkpoint").content == contents["checkpoint"]
    picture = client.get(f"/api/v1/versions/{version_id}/artifacts/confusion_matrix")
    assert picture.status_code == 200 and picture.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(picture.content)) as decoded:
        assert decoded.format == "PNG"
    assert client.get(f"/api/v1/versions/{version_id}/artifacts/onnx").status_code == 404  # none was produced


@BOTH
def test_bytes_gone_from_the_store_are_a_500_naming_the_key(client, platform, ant_and_bee_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    version_id, _ = _version_with_artifacts(client, platform, ant_and_bee_files, tmp_path)
    platform.blobs.delete(f"versions/{version_id}/checkpoint")
    with TestClient(client.app, headers=client.headers, raise_server_exceptions=False) as quiet:
        response = quiet.get(f"/api/v1/versions/{version_id}/artifacts/checkpoint")
    assert response.status_code == 500
    assert response.json()["detail"] == f"stored file versions/{version_id}/checkpoint is missing from storage"


@pytest.mark.parametrize("blob_backend", ["s3"])
def test_an_object_store_that_stops_answering_is_a_503(client, platform, ant_and_bee_files, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import boto3

    version_id, _ = _version_with_artifacts(client, platform, ant_and_bee_files, tmp_path)
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
    # The store's client now talks to a port nobody listens on, as if the server had gone away.
    platform.blobs._client = boto3.client("s3", endpoint_url=closed)  # type: ignore[attr-defined]
    platform.blobs.endpoint = closed  # type: ignore[attr-defined]
    with TestClient(client.app, headers=client.headers, raise_server_exceptions=False) as quiet:
        response = quiet.get(f"/api/v1/versions/{version_id}/artifacts/checkpoint")
    assert response.status_code == 503
    assert response.json()["detail"] == "the byte storage is unavailable; try again"
