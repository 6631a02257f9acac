"""Image upload (single, many, zip), deduplication by content, hostile input, listing and download."""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from platform_support import create_project, jpeg, upload, zip_bytes
from visiontrain.services.platform import Platform


def _image_count(client: TestClient, project_id: int) -> int:
    return client.get(f"/api/v1/projects/{project_id}/images").json()["total"]


@pytest.mark.parametrize("blob_backend", ["local", "s3"])  # the bytes in a directory, and in the real S3 server
def test_upload_records_size_and_dimensions_and_serves_the_bytes(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    path = ant_and_bee_files["ants"][0]
    [image] = upload(client, project["id"], [path])
    with Image.open(path) as original:
        assert (image["width"], image["height"]) == original.size
    assert image["original_name"] == path.name
    assert image["size_bytes"] == path.stat().st_size
    assert image["content_type"] == "image/jpeg"
    content = client.get(f"/api/v1/projects/{project['id']}/images/{image['id']}/content")
    assert content.status_code == 200 and content.content == path.read_bytes()
    assert content.headers["content-type"] == "image/jpeg"
    thumbnail = client.get(f"/api/v1/projects/{project['id']}/images/{image['id']}/content", params={"max_side": 64})
    with Image.open(io.BytesIO(thumbnail.content)) as small:
        # Thumbnails come in fixed sizes: 64 is served by the 128 one.
        assert max(small.size) == 128 and small.format == "JPEG"
    assert client.get(f"/api/v1/projects/{project['id']}/images/{image['id']}/content", params={"max_side": 5000}).status_code == 422


def test_same_bytes_twice_are_one_image(client: TestClient, ant_and_bee_files, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    path = ant_and_bee_files["bees"][0]
    first = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", jpeg(path))]).json()
    second = client.post(
        f"/api/v1/projects/{project['id']}/images", files=[("files", ("renamed.jpg", path.read_bytes(), "image/jpeg"))]
    ).json()
    assert (first["created"], second["created"], second["duplicates"]) == (1, 0, 1)
    assert first["images"][0]["id"] == second["images"][0]["id"]
    assert _image_count(client, project["id"]) == 1
    stored = [p for p in Path(platform.config.data_dir, "blobs", "images").rglob("*") if p.is_file()]
    assert len(stored) == 1


def test_many_files_in_one_request(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    images = upload(client, project["id"], ant_and_bee_files["ants"][:4] + ant_and_bee_files["bees"][:4])
    assert len({i["id"] for i in images}) == 8
    assert _image_count(client, project["id"]) == 8


def test_bad_files_are_refused_by_name_and_change_nothing(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    good = ant_and_bee_files["ants"][0]
    truncated = good.read_bytes()[: len(good.read_bytes()) // 2]
    cases = {
        "notes.txt": b"this is not an image",
        "half.jpg": truncated,
        "empty.png": b"",
    }
    for name, data in cases.items():
        response = client.post(
            f"/api/v1/projects/{project['id']}/images", files=[("files", jpeg(good)), ("files", (name, data, "image/jpeg"))]
        )
        assert response.status_code == 400, (name, response.text)
        assert name in response.json()["detail"]
    assert _image_count(client, project["id"]) == 0


def test_decompression_bomb_is_refused(client: TestClient) -> None:
    project = create_project(client)
    buffer = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buffer, format="PNG")  # 144 MP in a few kB
    response = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", ("bomb.png", buffer.getvalue(), "image/png"))])
    assert response.status_code == 400
    assert "bomb.png" in response.json()["detail"] and "too large" in response.json()["detail"]


def test_zip_upload_adds_images_and_reports_the_rest(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    entries = {f"photos/{p.name}": p.read_bytes() for p in ant_and_bee_files["ants"][:3]}
    entries["photos/readme.txt"] = b"hello"
    entries["photos/broken.jpg"] = b"\xff\xd8\xff\xe0 not really"
    response = client.post(
        f"/api/v1/projects/{project['id']}/images/archive", files={"file": ("photos.zip", zip_bytes(entries), "application/zip")}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] == 3
    assert sorted(r["name"] for r in body["rejected"]) == ["photos/broken.jpg", "photos/readme.txt"]
    assert _image_count(client, project["id"]) == 3


def _raw_zip(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo(name)
        archive.writestr(info, data)
    return buffer.getvalue()


def test_hostile_zips_are_refused_and_change_nothing(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    photo = ant_and_bee_files["ants"][0].read_bytes()
    link = io.BytesIO()
    with zipfile.ZipFile(link, "w") as archive:
        info = zipfile.ZipInfo("link.jpg")
        info.external_attr = 0o120777 << 16  # a symlink entry
        archive.writestr(info, "/etc/passwd")
    cases = {
        "traversal.zip": _raw_zip("../../escape.jpg", photo),
        "absolute.zip": _raw_zip("/tmp/escape.jpg", photo),
        "bomb.zip": _raw_zip("zeros.jpg", b"\0" * (16 * 1024 * 1024)),
        "symlink.zip": link.getvalue(),
        "not-a-zip.zip": b"PK but not really a zip archive",
    }
    for name, data in cases.items():
        response = client.post(
            f"/api/v1/projects/{project['id']}/images/archive", files={"file": (name, data, "application/zip")}
        )
        assert response.status_code == 400, (name, response.status_code, response.text)
        assert name in response.json()["detail"]
    assert _image_count(client, project["id"]) == 0


def test_upload_limit_is_a_413(platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.api.app import create_app
    from visiontrain.config import ServerConfig
    from visiontrain.services.platform import Platform as P

    from platform_support import make_token

    small = P(
        config=ServerConfig(**{**platform.config.model_dump(), "max_upload_mb": 1}),
        engine=platform.engine,
        sessions=platform.sessions,
        blobs=platform.blobs,
    )
    big = max((p for files in ant_and_bee_files.values() for p in files), key=lambda p: p.stat().st_size)
    with TestClient(create_app(platform=small, web=False), headers={"Authorization": f"Bearer {make_token(platform)}"}) as client:
        project = create_project(client)
        payload = big.read_bytes() * (1 + (1024 * 1024) // len(big.read_bytes()))
        response = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", ("huge.jpg", payload, "image/jpeg"))])
        assert response.status_code == 413
        assert "huge.jpg" in response.json()["detail"]
        # Far beyond the limit, the body is refused while it streams in.
        flood = client.post(f"/api/v1/projects/{project['id']}/images/archive", files={"file": ("flood.zip", b"\0" * (5 * 1024 * 1024), "application/zip")})
        assert flood.status_code == 413
        assert _image_count(client, project["id"]) == 0


@pytest.mark.parametrize("blob_backend", ["local", "s3"])  # the bytes in a directory, and in the real S3 server
def test_listing_pages_and_deleting(client: TestClient, ant_and_bee_files, platform: Platform) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    images = upload(client, project["id"], ant_and_bee_files["ants"][:5])
    page = client.get(f"/api/v1/projects/{project['id']}/images", params={"offset": 2, "limit": 2}).json()
    assert page["total"] == 5 and [i["id"] for i in page["items"]] == [i["id"] for i in images[2:4]]
    gone = images[0]
    thumbnail = client.get(f"/api/v1/projects/{project['id']}/images/{gone['id']}/content", params={"max_side": 32})
    assert thumbnail.status_code == 200
    assert client.delete(f"/api/v1/projects/{project['id']}/images/{gone['id']}").status_code == 204
    assert client.get(f"/api/v1/projects/{project['id']}/images/{gone['id']}").status_code == 404
    assert _image_count(client, project["id"]) == 4
    assert any(gone["sha256"] not in key for key in platform.blobs.keys("images"))  # the others' bytes stay
    assert not any(gone["sha256"] in key for folder in ("images", "thumbnails") for key in platform.blobs.keys(folder))
    # Filters need a view to filter by.
    assert client.get(f"/api/v1/projects/{project['id']}/images", params={"unannotated": True}).status_code == 422


def test_the_same_image_uploaded_at_once_by_many_requests_is_one_image(platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.services import auth, images, projects

    with platform.sessions() as session:
        org = auth.ensure_organization(session, name="acme")
        project_id = projects.create_project(session, organization_id=org.id, name="race").id
        session.commit()
    data = ant_and_bee_files["ants"][0].read_bytes()
    start = threading.Barrier(8)
    results: list[tuple[int, bool]] = []
    errors: list[BaseException] = []

    def upload_once() -> None:
        try:
            start.wait()
            with platform.sessions() as session:
                project = session.get(images.Project, project_id)
                checked = images.check_image(data=data, filename="same.jpg")
                row, created = images.store_image(session, blobs=platform.blobs, project=project, image=checked)
                session.commit()
                results.append((row.id, created))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=upload_once) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert len({image_id for image_id, _ in results}) == 1 and len(results) == 8
    assert sum(created for _, created in results) == 1
