"""Helpers the platform tests share: tokens, uploads, a ready-to-train classification view."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from fastapi.testclient import TestClient

from visiontrain.services import auth
from visiontrain.services.platform import Platform


def make_token(platform: Platform, organization: str = "acme") -> str:
    with platform.sessions() as session:
        _, secret = auth.create_token(session, organization=organization, name=f"{organization} test token")
        session.commit()
    return secret


def jpeg(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "image/jpeg")


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def create_project(client: TestClient, name: str = "Insects") -> dict:  # type: ignore[type-arg]
    response = client.post("/api/v1/projects", json={"name": name})
    assert response.status_code == 201, response.text
    return response.json()


def upload(client: TestClient, project_id: int, paths: list[Path]) -> list[dict]:  # type: ignore[type-arg]
    response = client.post(f"/api/v1/projects/{project_id}/images", files=[("files", jpeg(p)) for p in paths])
    assert response.status_code == 201, response.text
    return response.json()["images"]


def annotated_classification_view(client: TestClient, files: dict[str, list[Path]]) -> tuple[dict, dict, dict]:  # type: ignore[type-arg]
    """A project with a classification view whose images are annotated by their folder name."""
    project = create_project(client)
    view = client.post(
        f"/api/v1/projects/{project['id']}/views", json={"name": "species", "kind": "classification", "concepts": list(files)}
    ).json()
    items = []
    for label, paths in files.items():
        for image in upload(client, project["id"], paths):
            items.append({"image_id": image["id"], "concept": label})
    response = client.post(f"/api/v1/views/{view['id']}/annotations/batch", json={"items": items})
    assert response.status_code == 200, response.text
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "species"}).json()
    return project, view, model
