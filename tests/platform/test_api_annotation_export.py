"""GET /api/v1/views/{view_id}/export?format=...: a view's annotations as a dataset zip that imports back
(into a new view) with the same boxes and the same train/val/test sides; scoped to the organisation;
safe file names whatever was stored; `visiontrain platform export-annotations`."""

from __future__ import annotations

import contextlib
import io
import shutil
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from typer.testing import CliRunner

from visiontrain.cli.main import app as cli
from visiontrain.services import splits
from visiontrain.services.platform import Platform
from visiontrain.store.models import Image, View

from platform_support import create_project

RACCOONS = ["raccoon-1", "raccoon-2", "raccoon-3", "raccoon-4", "raccoon-5", "raccoon-6", "raccoon-72", "raccoon-119"]
TEST_SET = ["raccoon-5", "raccoon-6"]
EMPTY_XML = "<annotation><filename>street.jpg</filename><size><width>640</width><height>480</height></size></annotation>"


@pytest.fixture(scope="module")
def voc_zip(datasets_dir: Path) -> bytes:
    """Raccoons in VOC with a held-out test list (the rest left to the view's split), an image without
    objects (street.jpg) and one without annotation (raccoon-98.jpg)."""
    source = datasets_dir / "raccoon"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for stem in RACCOONS:
            archive.write(source / "images" / f"{stem}.jpg", f"JPEGImages/{stem}.jpg")
            archive.write(source / "annotations" / f"{stem}.xml", f"Annotations/{stem}.xml")
        archive.write(datasets_dir / "coco128_coco" / "images" / "000000000009.jpg", "JPEGImages/street.jpg")
        archive.writestr("Annotations/street.xml", EMPTY_XML)
        archive.write(source / "images" / "raccoon-98.jpg", "JPEGImages/raccoon-98.jpg")
        archive.writestr("ImageSets/Main/test.txt", "\n".join(TEST_SET) + "\n")
    return buffer.getvalue()


def _view(client: TestClient, project_id: int, name: str, kind: str = "detection") -> int:
    response = client.post(f"/api/v1/projects/{project_id}/views", json={"name": name, "kind": kind, "concepts": []})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _import(client: TestClient, view_id: int, data: bytes, name: str = "dataset.zip") -> dict:  # type: ignore[type-arg]
    response = client.post(f"/api/v1/views/{view_id}/import", files={"file": (name, data, "application/zip")})
    assert response.status_code == 201, response.text
    return response.json()


def _boxes(client: TestClient, view_id: int) -> dict[int, list[tuple]]:  # type: ignore[type-arg]
    page = client.get(f"/api/v1/views/{view_id}/annotations", params={"limit": 1000}).json()
    return {
        item["image_id"]: [(b["concept"], b["x_min"], b["y_min"], b["x_max"], b["y_max"]) for b in item["boxes"]]
        for item in page["items"]
    }


def _sides(platform: Platform, view_id: int) -> dict[int, str]:
    """Each annotated image's side in the view's split, as a version would train on it (no fixed validation here)."""
    with platform.sessions() as session:
        state = splits.split_state(session, view=session.get(View, view_id), persist=False)
        return {entry.image.id: entry.side for entry in state.entries}


def _split_counts(client: TestClient, view_id: int) -> tuple[int, int, int]:
    split = client.get(f"/api/v1/views/{view_id}/split").json()
    return split["train"], split["val"], split["test"]


@pytest.fixture
def detection_view(client: TestClient, voc_zip: bytes) -> tuple[int, int]:
    project = create_project(client, "Raccoons")
    view_id = _view(client, project["id"], "raccoons")
    report = _import(client, view_id, voc_zip)
    assert report["annotated"] == len(RACCOONS) + 1 and report["images"] == len(RACCOONS) + 2
    # A split of the view's own (not what a new view would make): the export must carry it.
    resplit = client.post(f"/api/v1/views/{view_id}/split/resplit", json={"validation_split": 0.4, "seed": 7})
    assert resplit.status_code == 200, resplit.text
    return project["id"], view_id


@pytest.mark.parametrize("format_name", ["coco", "yolo", "voc", "csv"])
def test_an_export_imports_back_with_the_same_boxes_and_sides(
    client: TestClient, platform: Platform, detection_view: tuple[int, int], format_name: str
) -> None:
    project_id, view_id = detection_view
    original_boxes, original_sides = _boxes(client, view_id), _sides(platform, view_id)
    assert set(original_sides.values()) == {"train", "val", "test"}  # the view's split gave some validation images
    assert sum(1 for boxes in original_boxes.values() if not boxes) == 1  # street.jpg: annotated, no object

    response = client.get(f"/api/v1/views/{view_id}/export", params={"format": format_name})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert f'filename="Raccoons-raccoons-{format_name}.zip"' in response.headers["content-disposition"]
    assert response.headers["x-export-images"] == str(len(RACCOONS) + 1)
    assert response.headers["x-export-boxes"] == str(sum(map(len, original_boxes.values())))
    assert response.headers["x-export-unannotated"] == "1"  # raccoon-98.jpg
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = archive.namelist()
    assert not any(name.endswith("raccoon-98.jpg") for name in names)
    assert any(name.endswith("street.jpg") for name in names)

    again = _view(client, project_id, f"again as {format_name}")
    report = _import(client, again, response.content, f"export.{format_name}.zip")
    assert report["format"] == format_name and report["duplicates"] == len(RACCOONS) + 1 and not report["rejected"]
    assert not report["warnings"], report["warnings"]
    got = _boxes(client, again)
    assert set(got) == set(original_boxes)
    for image_id, boxes in original_boxes.items():
        assert [b[0] for b in got[image_id]] == [b[0] for b in boxes]
        for a, b in zip(boxes, got[image_id], strict=True):
            assert a[1:] == pytest.approx(b[1:], abs=1e-6)
    assert _sides(platform, again) == original_sides
    assert _split_counts(client, again) == _split_counts(client, view_id)
    concepts = client.get(f"/api/v1/views/{again}").json()["concepts"]
    assert concepts == ["raccoon"]


def test_export_is_scoped_to_the_organisation(
    client: TestClient, other_org_client: TestClient, detection_view: tuple[int, int]
) -> None:
    _, view_id = detection_view
    for path in (f"/api/v1/views/{view_id}/export?format=coco", f"/api/v1/views/{view_id}/export/formats"):
        response = other_org_client.get(path)
        assert response.status_code == 404 and response.json() == {"detail": f"view {view_id} not found"}
    assert client.get("/api/v1/views/999999/export", params={"format": "coco"}).status_code == 404
    assert TestClient(client.app).get(f"/api/v1/views/{view_id}/export?format=coco").status_code == 401


def test_unknown_or_unfit_formats_are_422_naming_the_formats(client: TestClient, detection_view: tuple[int, int]) -> None:
    project_id, view_id = detection_view
    response = client.get(f"/api/v1/views/{view_id}/export", params={"format": "kitti"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "format"] and "coco, yolo, voc, csv" in error["msg"]
    assert client.get(f"/api/v1/views/{view_id}/export").status_code == 422  # format is required
    formats = client.get(f"/api/v1/views/{view_id}/export/formats").json()
    assert [f["name"] for f in formats] == ["coco", "yolo", "voc", "csv"]
    tagging = _view(client, project_id, "tags", kind="tagging")
    response = client.get(f"/api/v1/views/{tagging}/export", params={"format": "coco"})
    assert response.status_code == 422 and "cannot be written as COCO" in response.json()["detail"][0]["msg"]
    assert [f["name"] for f in client.get(f"/api/v1/views/{tagging}/export/formats").json()] == ["csv"]
    response = client.get(f"/api/v1/views/{tagging}/export", params={"format": "csv"})
    assert response.status_code == 409 and "no annotated image" in response.json()["detail"]


@pytest.mark.parametrize("blob_backend", ["local", "s3"])  # the bytes in a directory, and in the real S3 server
def test_a_tagging_view_exports_as_csv_and_imports_back(client: TestClient, platform: Platform, datasets_dir: Path) -> None:
    source = datasets_dir / "coco128_coco"
    rows = (source / "tags.csv").read_text().splitlines()[:9]  # the header and 8 images
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("tags.csv", "\n".join(rows) + "\n")
        for row in rows[1:]:
            name = row.split(",")[0]
            archive.write(source / name, name)
    project = create_project(client, "Tags")
    view_id = _view(client, project["id"], "tags", kind="tagging")
    _import(client, view_id, buffer.getvalue())
    response = client.get(f"/api/v1/views/{view_id}/export", params={"format": "csv"})
    assert response.status_code == 200, response.text
    again = _view(client, project["id"], "tags again", kind="tagging")
    _import(client, again, response.content)
    def concepts(view: int) -> dict[int, list[str]]:
        page = client.get(f"/api/v1/views/{view}/annotations", params={"limit": 1000}).json()
        return {item["image_id"]: sorted(item["concepts"]) for item in page["items"]}
    assert concepts(again) == concepts(view_id) and len(concepts(view_id)) == 8
    assert _sides(platform, again) == _sides(platform, view_id)


def test_stored_names_cannot_escape_or_clash(client: TestClient, platform: Platform, detection_view: tuple[int, int]) -> None:
    _, view_id = detection_view
    with platform.sessions() as session:
        ids = sorted(session.scalars(Image.__table__.select().with_only_columns(Image.id)))
        hostile = {ids[0]: "../../evil.jpg", ids[1]: "/etc/evil.jpg", ids[2]: "..\\..\\EVIL.jpg", ids[3]: ".."}
        for image_id, name in hostile.items():
            session.execute(update(Image).where(Image.id == image_id).values(original_name=name))
        session.commit()
    for format_name in ("voc", "yolo"):
        response = client.get(f"/api/v1/views/{view_id}/export", params={"format": format_name})
        assert response.status_code == 200, response.text
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            names = archive.namelist()
        assert all(not n.startswith("/") and ".." not in n.split("/") and "\\" not in n for n in names)
        images = [n.rsplit("/", 1)[-1] for n in names if n.endswith(".jpg")]
        assert {"evil.jpg", "evil_2.jpg", "EVIL_3.jpg", "image.jpg"} <= set(images)
        assert len({name.lower() for name in images}) == len(images) == len(RACCOONS) + 1


def test_cli_downloads_the_export(client: TestClient, detection_view: tuple[int, int], tmp_path: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    _, view_id = detection_view
    seen = []

    def through_the_test_client(url: str, token: str):  # type: ignore[no-untyped-def]
        seen.append((url, token))
        return contextlib.nullcontext(client)

    monkeypatch.setattr("visiontrain.cli.platform._http_client", through_the_test_client)
    out = tmp_path / "downloads" / "raccoons.zip"
    runner = CliRunner()
    result = runner.invoke(cli, ["platform", "export-annotations", str(view_id), "--format", "voc", "--out", str(out),
                                 "--url", "http://server:8000", "--token", "vt_secret"])
    assert result.exit_code == 0, result.output
    assert seen == [("http://server:8000", "vt_secret")]
    assert "9 images" in result.output and "1 unannotated image(s) left out" in result.output
    with zipfile.ZipFile(out) as archive:
        assert "ImageSets/Main/test.txt" in archive.namelist()
        assert archive.read("ImageSets/Main/test.txt").decode().split() == TEST_SET
    assert not list(out.parent.glob("*.partial"))
    bad = runner.invoke(cli, ["platform", "export-annotations", str(view_id), "--format", "kitti", "--out", str(out),
                              "--token", "t"])
    assert bad.exit_code == 2 and "422" in bad.output and "coco, yolo, voc, csv" in bad.output
    monkeypatch.chdir(tmp_path)
    named = runner.invoke(cli, ["platform", "export-annotations", str(view_id), "-f", "coco"], env={"VISIONTRAIN_TOKEN": "t"})
    assert named.exit_code == 0, named.output
    assert (tmp_path / "Raccoons-raccoons-coco.zip").is_file()
    shutil.rmtree(tmp_path / "downloads")
