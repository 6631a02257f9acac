"""Hostile input to the API (issue 7, items 1, 2, 3 and 6): refused with a 4xx naming the problem, nothing stored."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import EpsImagePlugin, Image

from visiontrain.api import uploads
from visiontrain.api.app import create_app
from visiontrain.config import ServerConfig
from visiontrain.services.platform import Platform

from platform_support import create_project, make_token, zip_bytes

# The 70-byte PostScript loop of the issue: Ghostscript would spin on it until killed.
EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n{ } loop\n%%EOF\n"


def solid_png(width: int, height: int) -> bytes:
    """A real, valid single-colour PNG (it compresses to almost nothing, whatever its size)."""
    row = b"\x00" + b"\x00" * width  # filter byte + greyscale pixels
    raw = zlib.compress(row * height, 9)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def _image_count(client: TestClient, project_id: int) -> int:
    return client.get(f"/api/v1/projects/{project_id}/images").json()["total"]


@pytest.fixture
def no_ghostscript(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any attempt to open a file with Pillow's EPS plugin (the one that runs Ghostscript)."""
    opened: list[str] = []

    def refuse(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        opened.append("eps")
        raise AssertionError("the EPS plugin was reached")

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", refuse)
    return opened


def test_postscript_is_refused_by_name_on_every_upload_route_without_reaching_ghostscript(
    client: TestClient, no_ghostscript: list[str]
) -> None:
    project = create_project(client)
    for name in ("drawing.eps", "holiday.jpg"):
        response = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", (name, EPS, "image/jpeg"))])
        assert response.status_code == 400, response.text
        assert name in response.json()["detail"] and "PostScript" in response.json()["detail"]
    archive = client.post(
        f"/api/v1/projects/{project['id']}/images/archive",
        files={"file": ("a.zip", zip_bytes({"photo.jpg": EPS}), "application/zip")},
    )
    assert archive.status_code == 400 and "PostScript" in archive.json()["detail"]
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "v", "kind": "classification"}).json()
    imported = client.post(
        f"/api/v1/views/{view['id']}/import",
        files={"file": ("set.zip", zip_bytes({"ants/a.jpg": EPS, "bees/b.jpg": EPS}), "application/zip")},
    )
    assert imported.status_code == 400
    assert no_ghostscript == [] and _image_count(client, project["id"]) == 0


def test_a_huge_pixel_png_is_refused_from_its_header_by_the_server_setting(platform: Platform, tmp_path: Path) -> None:
    # 8000x8000 = 64 MP in about 60 KB: over the default limit (50 MP); a 4000x4000 one is under it.
    bomb, fine = solid_png(8000, 8000), solid_png(4000, 4000)
    assert len(bomb) < 200_000
    with TestClient(create_app(platform=platform, web=False), headers={"Authorization": f"Bearer {make_token(platform)}"}) as client:
        project = create_project(client)
        refused = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", ("big.png", bomb, "image/png"))])
        assert refused.status_code == 400
        assert "big.png" in refused.json()["detail"] and "the limit is 50 MP" in refused.json()["detail"]
        ok = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", ("fine.png", fine, "image/png"))])
        assert ok.status_code == 201 and (ok.json()["images"][0]["width"], ok.json()["images"][0]["height"]) == (4000, 4000)
    tight = Platform(
        config=ServerConfig(**{**platform.config.model_dump(), "max_image_pixels": 1_000_000}),
        engine=platform.engine, sessions=platform.sessions, blobs=platform.blobs,
    )
    with TestClient(create_app(platform=tight, web=False), headers={"Authorization": f"Bearer {make_token(platform)}"}) as client:
        project = create_project(client, "tight")
        refused = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", ("fine.png", fine, "image/png"))])
        assert refused.status_code == 400 and "the limit is 1 MP" in refused.json()["detail"]
        # The same setting holds for images inside a zip of images and inside an annotated import.
        archive = zip_bytes({"ants/fine.png": fine})
        zipped = client.post(f"/api/v1/projects/{project['id']}/images/archive", files={"file": ("set.zip", archive, "application/zip")})
        assert zipped.status_code == 400 and "the limit is 1 MP" in zipped.text
        view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "v", "kind": "classification", "concepts": []}).json()
        imported = client.post(f"/api/v1/views/{view['id']}/import", files={"file": ("set.zip", archive, "application/zip")})
        assert imported.status_code == 400 and "the limit is 1 MP" in imported.text
        assert _image_count(client, project["id"]) == 0


def test_max_image_pixels_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VISIONTRAIN_MAX_IMAGE_PIXELS", "1234567")
    assert ServerConfig.from_env(data_dir=tmp_path).max_image_pixels == 1234567


class CountingFile(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk


def test_a_large_non_image_is_refused_after_reading_its_first_bytes_only() -> None:
    from fastapi import UploadFile

    from visiontrain.services.errors import BadFile

    junk = CountingFile(b"\x07" * (20 * 1024 * 1024))
    with pytest.raises(BadFile, match="junk.jpg: not an image"):
        uploads.read_upload(UploadFile(junk, filename="junk.jpg"), limit_mb=512)
    assert junk.bytes_read <= 64


def test_a_large_non_image_upload_is_a_400_and_nothing_is_stored(client: TestClient) -> None:
    project = create_project(client)
    response = client.post(
        f"/api/v1/projects/{project['id']}/images", files=[("files", ("junk.png", b"\x07" * (8 * 1024 * 1024), "image/png"))]
    )
    assert response.status_code == 400 and "junk.png" in response.json()["detail"]
    assert _image_count(client, project["id"]) == 0


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_json_bodies_are_422_naming_the_field(client: TestClient, ant_and_bee_files, constant: str) -> None:  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"}
    project = client.post("/api/v1/projects", content=f'{{"name": {constant}}}', headers=headers)
    assert project.status_code == 422, project.text
    assert project.json()["detail"][0]["loc"] == ["body", "name"]
    from platform_support import annotated_classification_view

    _, view, model = annotated_classification_view(client, {k: v[:2] for k, v in ant_and_bee_files.items()})
    version = client.post(
        f"/api/v1/models/{model['id']}/versions", content=f'{{"settings": {{"learning_rate": {constant}}}}}', headers=headers
    )
    assert version.status_code == 422 and version.json()["detail"][0]["loc"] == ["body", "settings", "learning_rate"]
    suggested = client.post(
        f"/api/v1/views/{view['id']}/suggested-settings", content=f'{{"settings": {{"dropout": {constant}}}}}', headers=headers
    )
    assert suggested.status_code == 422 and suggested.json()["detail"][0]["loc"] == ["body", "settings", "dropout"]
    assert client.get(f"/api/v1/models/{model['id']}/versions").json() == []


def test_ids_offsets_and_cursors_beyond_64_bits_are_422_on_every_route(client: TestClient) -> None:
    huge = str(2**64)
    project = create_project(client)
    paths = [
        f"/api/v1/projects/{huge}",
        f"/api/v1/projects/{project['id']}/images/{huge}",
        f"/api/v1/projects/{project['id']}/images/{huge}/content",
        f"/api/v1/views/{huge}",
        f"/api/v1/views/{huge}/annotations/{huge}",
        f"/api/v1/models/{huge}",
        f"/api/v1/versions/{huge}",
        f"/api/v1/versions/{huge}/metrics",
    ]
    for path in paths:
        response = client.get(path)
        assert response.status_code == 422, (path, response.status_code, response.text)
        assert response.json()["detail"][0]["loc"][0] == "path"
    for params in ({"offset": huge}, {"view_id": huge}, {"concept_id": huge}):
        response = client.get(f"/api/v1/projects/{project['id']}/images", params=params)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", next(iter(params))]
    assert client.delete(f"/api/v1/tokens/{huge}").status_code == 422
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "v", "kind": "classification", "concepts": ["a"]}).json()
    split = client.put(f"/api/v1/views/{view['id']}/split", json={"image_ids": [2**64], "split": "val"})
    assert split.status_code == 422 and split.json()["detail"][0]["loc"][:2] == ["body", "image_ids"]
    batch = client.post(f"/api/v1/views/{view['id']}/annotations/batch", content=f'{{"items": [{{"image_id": {"9" * 5000}, "concept": "a"}}]}}', headers={"Content-Type": "application/json"})
    assert batch.status_code == 422


def test_names_with_nul_are_422_everywhere_names_are_taken(client: TestClient) -> None:
    project = create_project(client)
    assert client.post("/api/v1/projects", json={"name": "a\x00b"}).json()["detail"][0]["loc"] == ["body", "name"]
    assert client.patch(f"/api/v1/projects/{project['id']}", json={"description": "x\x00"}).status_code == 422
    views = f"/api/v1/projects/{project['id']}/views"
    assert client.post(views, json={"name": "v\x00", "kind": "classification"}).status_code == 422
    bad_concepts = client.post(views, json={"name": "v", "kind": "classification", "concepts": ["ok", "b\x00d"]})
    assert bad_concepts.status_code == 422 and bad_concepts.json()["detail"][0]["loc"] == ["body", "concepts", 1]
    view = client.post(views, json={"name": "v", "kind": "classification", "concepts": ["ok"]}).json()
    assert client.post(f"/api/v1/views/{view['id']}/concepts", json={"name": "\x00"}).status_code == 422
    assert client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m\x00"}).status_code == 422
    assert client.post("/api/v1/tokens", json={"name": "t\x00"}).status_code == 422
    # Built by hand: HTTP clients will not put NUL in a file name, a hostile one will.
    body = (
        b"--b\r\nContent-Disposition: form-data; name=\"files\"; filename=\"a\x00.png\"\r\n"
        b"Content-Type: image/png\r\n\r\n" + solid_png(8, 8) + b"\r\n--b--\r\n"
    )
    image = client.post(
        f"/api/v1/projects/{project['id']}/images", content=body, headers={"Content-Type": "multipart/form-data; boundary=b"}
    )
    assert image.status_code == 422 and image.json()["detail"][0]["loc"] == ["body", "files", 0]
    query = client.get("/api/v1/versions/1/metrics", params={"kind": "epoch\x00"})
    assert query.status_code == 422 and query.json()["detail"][0]["loc"] == ["query", "kind"]
    assert [p["name"] for p in client.get("/api/v1/projects").json()] == ["Insects"]


def test_over_size_uploads_name_the_limit(platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    small = Platform(
        config=ServerConfig(**{**platform.config.model_dump(), "max_upload_mb": 1}),
        engine=platform.engine, sessions=platform.sessions, blobs=platform.blobs,
    )
    with TestClient(create_app(platform=small, web=False), headers={"Authorization": f"Bearer {make_token(platform)}"}) as client:
        project = create_project(client)
        flood = client.post(
            f"/api/v1/projects/{project['id']}/images/archive",
            files={"file": ("flood.zip", b"\0" * (5 * 1024 * 1024), "application/zip")},
        )
        assert flood.status_code == 413
        assert "1 MB upload limit" in flood.json()["detail"] and "VISIONTRAIN_MAX_UPLOAD_MB" in flood.json()["detail"]

        # Without a Content-Length (chunked), the body is cut off once it passes the limit, with the same message.
        def chunks():  # type: ignore[no-untyped-def]
            head = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f.zip\"\r\n\r\n"
            yield head
            for _ in range(5):
                yield b"\0" * (1024 * 1024)
            yield b"\r\n--b--\r\n"

        streamed = client.post(
            f"/api/v1/projects/{project['id']}/images/archive",
            content=chunks(),
            headers={"Content-Type": "multipart/form-data; boundary=b"},
        )
        assert streamed.status_code == 413 and "1 MB upload limit" in streamed.json()["detail"]


def test_a_very_long_file_name_gets_a_message_about_the_name(client: TestClient) -> None:
    project = create_project(client)
    response = client.post(
        f"/api/v1/projects/{project['id']}/images", files=[("files", ("a" * 5000 + ".png", solid_png(8, 8), "image/png"))]
    )
    assert response.status_code == 400
    assert "file name" in response.json()["detail"] and "Invalid multipart data" not in response.json()["detail"]
    # A long name that the parser takes is kept, shortened to 500 characters with its extension.
    [image] = client.post(
        f"/api/v1/projects/{project['id']}/images", files=[("files", ("b" * 1000 + ".png", solid_png(8, 8), "image/png"))]
    ).json()["images"]
    assert len(image["original_name"]) <= 500


def test_a_too_long_class_folder_name_is_reported_against_the_archive_not_body_name(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "v", "kind": "classification"}).json()
    photo = ant_and_bee_files["ants"][0].read_bytes()
    folder = "c" * 250
    response = client.post(
        f"/api/v1/views/{view['id']}/import",
        files={"file": ("set.zip", zip_bytes({f"{folder}/a.jpg": photo, "bees/b.jpg": photo}), "application/zip")},
    )
    assert response.status_code == 422, response.text
    error = response.json()["detail"][0]
    assert error["loc"] == ["body", "file"] and "set.zip" in error["msg"] and "250 characters" in error["msg"]
    assert _image_count(client, project["id"]) == 0


def test_uploads_still_work_for_every_allowed_format(client: TestClient) -> None:
    project = create_project(client)
    files = []
    for fmt, ext in (("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tif")):
        buffer = io.BytesIO()
        Image.new("RGB", (20 + len(files), 10), (10 * len(files), 80, 160)).save(buffer, format=fmt)
        files.append(("files", (f"x.{ext}", buffer.getvalue(), "application/octet-stream")))
    response = client.post(f"/api/v1/projects/{project['id']}/images", files=files)
    assert response.status_code == 201, response.text
    assert response.json()["created"] == 6
    assert {i["content_type"] for i in response.json()["images"]} == {
        "image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"
    }
