"""Import errors over the API name the upload as the user knows it, never the server's temporary file."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from platform_support import create_project, zip_bytes


def _view(client: TestClient, kind: str) -> dict:  # type: ignore[type-arg]
    project = create_project(client)
    response = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "v", "kind": kind, "concepts": []})
    assert response.status_code == 201, response.text
    return response.json()


def _detail(response) -> str:  # type: ignore[no-untyped-def]
    body = response.json()
    return str(body.get("detail", body))


def test_import_errors_name_the_uploaded_archive_and_paths_inside_it(client: TestClient, datasets_dir: Path) -> None:
    view = _view(client, "detection")
    not_zip = client.post(
        f"/api/v1/views/{view['id']}/import", files={"file": ("holiday photos.zip", b"not a zip at all", "application/zip")}
    )
    assert not_zip.status_code == 400
    detail = _detail(not_zip)
    assert "holiday photos.zip is not a zip archive" in detail
    assert not re.search(r"tmp\w{6,}|/tmp/|visiontrain-", detail), detail

    image = sorted((datasets_dir / "coco128_coco" / "images").glob("*.jpg"))[0]
    deep = '{"images": ' + "[" * 100_000 + "]" * 100_000 + ', "annotations": [], "categories": []}'
    entries = {f"images/{image.name}": image.read_bytes(), "coco/annotations/instances.json": deep.encode()}
    response = client.post(f"/api/v1/views/{view['id']}/import", files={"file": ("coco.zip", zip_bytes(entries), "application/zip")})
    assert response.status_code == 400
    detail = _detail(response)
    assert "coco.zip" in detail and "annotations/instances.json: JSON nested too deeply" in detail
    assert not re.search(r"tmp\w{6,}|/tmp/|visiontrain-", detail), detail
