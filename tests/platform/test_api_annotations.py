"""Views, concepts and annotations for each kind, filters, splits, and dataset import."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from platform_support import create_project, upload, zip_bytes


def _view(client: TestClient, project_id: int, kind: str, concepts: list[str]) -> dict:  # type: ignore[type-arg]
    response = client.post(f"/api/v1/projects/{project_id}/views", json={"name": kind, "kind": kind, "concepts": concepts})
    assert response.status_code == 201, response.text
    return response.json()


def test_view_kinds_are_checked_and_names_unique(client: TestClient) -> None:
    project = create_project(client)
    bad = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "x", "kind": "segmentation"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "kind"]
    view = _view(client, project["id"], "classification", ["ants", "bees"])
    assert view["concepts"] == ["ants", "bees"] and view["images"] == 0
    assert client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "classification", "kind": "tagging"}).status_code == 409
    assert client.post(f"/api/v1/views/{view['id']}/concepts", json={"name": "ants"}).status_code == 409


def test_classification_has_exactly_one_concept(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    view = _view(client, project["id"], "classification", ["ants", "bees"])
    [image] = upload(client, project["id"], ant_and_bee_files["ants"][:1])
    url = f"/api/v1/views/{view['id']}/annotations/{image['id']}"
    assert client.put(url, json={"concept": "bees"}).json()["concepts"] == ["bees"]
    state = client.put(url, json={"concept": "ants"}).json()  # replaces, never adds
    assert state == {"image_id": image["id"], "annotated": True, "split": None, "concepts": ["ants"], "boxes": []}
    wrong_kind = client.put(url, json={"concepts": ["ants", "bees"]})
    assert wrong_kind.status_code == 422
    assert "classification view" in wrong_kind.json()["detail"][0]["msg"]
    unknown = client.put(url, json={"concept": "wasps"})
    assert unknown.status_code == 422 and "wasps" in unknown.json()["detail"][0]["msg"]
    assert client.get(url).json()["concepts"] == ["ants"]  # the refused requests changed nothing
    cleared = client.delete(url).json()
    assert cleared["annotated"] is False and cleared["concepts"] == []


def test_tagging_allows_without_concept(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    view = _view(client, project["id"], "tagging", ["leaf", "flower", "sky"])
    images = upload(client, project["id"], ant_and_bee_files["bees"][:3])
    base = f"/api/v1/views/{view['id']}/annotations"
    assert client.put(f"{base}/{images[0]['id']}", json={"concepts": ["flower", "sky", "flower"]}).json()["concepts"] == ["flower", "sky"]
    nothing = client.put(f"{base}/{images[1]['id']}", json={"concepts": []}).json()
    assert nothing["annotated"] is True and nothing["concepts"] == []
    listing = f"/api/v1/projects/{project['id']}/images"
    unannotated = client.get(listing, params={"view_id": view["id"], "unannotated": True}).json()
    assert [i["id"] for i in unannotated["items"]] == [images[2]["id"]]
    flower = next(c for c in client.get(f"/api/v1/views/{view['id']}/concepts").json() if c["name"] == "flower")
    assert flower["image_count"] == 1
    with_flower = client.get(listing, params={"view_id": view["id"], "concept_id": flower["id"]}).json()
    assert [i["id"] for i in with_flower["items"]] == [images[0]["id"]]
    assert with_flower["items"][0]["annotation"]["concepts"] == ["flower", "sky"]
    # Deleting a concept removes it from the images; one left with no tag at all is unannotated again.
    client.put(f"{base}/{images[2]['id']}", json={"concepts": ["sky"]})
    sky = next(c for c in client.get(f"/api/v1/views/{view['id']}/concepts").json() if c["name"] == "sky")
    assert client.delete(f"/api/v1/views/{view['id']}/concepts/{sky['id']}").status_code == 204
    assert client.get(f"{base}/{images[0]['id']}").json()["concepts"] == ["flower"]
    assert client.get(f"{base}/{images[2]['id']}").json()["annotated"] is False
    assert client.get(f"{base}/{images[1]['id']}").json()["annotated"] is True  # "without concept" stays a statement


def test_detection_boxes_must_lie_inside_the_image(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    view = _view(client, project["id"], "detection", ["ant"])
    [image] = upload(client, project["id"], ant_and_bee_files["ants"][:1])
    url = f"/api/v1/views/{view['id']}/annotations/{image['id']}"
    box = {"concept": "ant", "x_min": 10, "y_min": 20, "x_max": 60, "y_max": 90}
    state = client.put(url, json={"boxes": [box]}).json()
    assert state["boxes"] == [{**box, "x_min": 10.0, "y_min": 20.0, "x_max": 60.0, "y_max": 90.0}]
    outside = client.put(url, json={"boxes": [box, {**box, "x_max": image["width"] + 1}]})
    assert outside.status_code == 422
    assert outside.json()["detail"][0]["loc"] == ["body", "boxes", 1]
    inverted = client.put(url, json={"boxes": [{**box, "x_min": 70}]})
    assert inverted.status_code == 422
    assert len(client.get(url).json()["boxes"]) == 1
    assert client.put(url, json={"boxes": []}).json() == {
        "image_id": image["id"], "annotated": True, "split": None, "concepts": [], "boxes": []
    }


def test_fixed_split_and_filter(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    view = _view(client, project["id"], "classification", ["ants", "bees"])
    images = upload(client, project["id"], ant_and_bee_files["ants"][:3])
    ids = [i["id"] for i in images[:2]]
    assert client.put(f"/api/v1/views/{view['id']}/split", json={"image_ids": ids, "split": "val"}).json() == {"updated": 2}
    val = client.get(f"/api/v1/projects/{project['id']}/images", params={"view_id": view["id"], "split": "val"}).json()
    assert [i["id"] for i in val["items"]] == ids and val["items"][0]["annotation"]["split"] == "val"
    missing = client.put(f"/api/v1/views/{view['id']}/split", json={"image_ids": [ids[0], 999_999], "split": "train"})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["body", "image_ids", 1]
    val_after = client.get(f"/api/v1/projects/{project['id']}/images", params={"view_id": view["id"], "split": "val"}).json()
    assert val_after["total"] == 2


def test_batch_annotation_is_all_or_nothing(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    view = _view(client, project["id"], "classification", ["ants", "bees"])
    images = upload(client, project["id"], ant_and_bee_files["ants"][:2])
    bad = client.post(
        f"/api/v1/views/{view['id']}/annotations/batch",
        json={"items": [{"image_id": images[0]["id"], "concept": "ants"}, {"image_id": images[1]["id"], "concept": "moths"}]},
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:3] == ["body", "items", 1]
    assert client.get(f"/api/v1/views/{view['id']}/annotations").json()["total"] == 0


def test_concept_used_by_a_model_cannot_be_deleted(client: TestClient) -> None:
    project = create_project(client)
    view = _view(client, project["id"], "classification", ["ants", "bees"])
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m"}).json()
    assert model["concepts"] == ["ants", "bees"]
    ants = client.get(f"/api/v1/views/{view['id']}/concepts").json()[0]
    refused = client.delete(f"/api/v1/views/{view['id']}/concepts/{ants['id']}")
    assert refused.status_code == 409 and "'m'" in refused.json()["detail"]
    # Deleting the whole view takes its models with it.
    assert client.delete(f"/api/v1/views/{view['id']}").status_code == 204
    assert client.get(f"/api/v1/models/{model['id']}").status_code == 404


def test_import_imagefolder_zip_into_a_classification_view(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    view = _view(client, project["id"], "classification", [])
    entries = {f"train/{label}/{p.name}": p.read_bytes() for label, paths in ant_and_bee_files.items() for p in paths[:3]}
    entries.update({f"val/{label}/{p.name}": p.read_bytes() for label, paths in ant_and_bee_files.items() for p in paths[3:4]})
    response = client.post(f"/api/v1/views/{view['id']}/import", files={"file": ("insects.zip", zip_bytes(entries), "application/zip")})
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["format"], report["images"], report["annotated"]) == ("imagefolder", 8, 8)
    assert sorted(report["concepts_created"]) == ["ants", "bees"]
    fixed_val = client.get(f"/api/v1/projects/{project['id']}/images", params={"view_id": view["id"], "split": "val"}).json()
    assert fixed_val["total"] == 2
    assert client.get(f"/api/v1/views/{view['id']}").json()["annotated"] == 8


def test_import_pascal_voc_into_a_detection_view(client: TestClient, datasets_dir: Path) -> None:
    project = create_project(client)
    view = _view(client, project["id"], "detection", [])
    raccoon = datasets_dir / "raccoon"
    names = sorted(p.stem for p in (raccoon / "annotations").glob("*.xml"))[:4]
    entries = {f"images/{n}.jpg": (raccoon / "images" / f"{n}.jpg").read_bytes() for n in names}
    entries.update({f"annotations/{n}.xml": (raccoon / "annotations" / f"{n}.xml").read_bytes() for n in names})
    response = client.post(
        f"/api/v1/views/{view['id']}/import", data={"format": "voc"}, files={"file": ("raccoon.zip", zip_bytes(entries), "application/zip")}
    )
    assert response.status_code == 201, response.text
    assert response.json()["annotated"] == 4
    annotations = client.get(f"/api/v1/views/{view['id']}/annotations").json()["items"]
    assert all(a["boxes"] and a["boxes"][0]["concept"] == "raccoon" for a in annotations)


def test_import_refuses_a_format_that_cannot_feed_the_view(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    view = _view(client, project["id"], "detection", [])
    entries = {f"ants/{p.name}": p.read_bytes() for p in ant_and_bee_files["ants"][:2]}
    response = client.post(
        f"/api/v1/views/{view['id']}/import", data={"format": "imagefolder"}, files={"file": ("x.zip", zip_bytes(entries), "application/zip")}
    )
    assert response.status_code == 400
    assert "detection" in response.json()["detail"]
    assert client.get(f"/api/v1/projects/{project['id']}/images").json()["total"] == 0


def test_import_yolo_into_a_detection_view(client: TestClient, datasets_dir: Path) -> None:
    project = create_project(client)
    view = _view(client, project["id"], "detection", [])
    yolo = datasets_dir / "coco128_yolo"
    stems = sorted(p.stem for p in (yolo / "labels" / "train").glob("*.txt") if (yolo / "images" / "train" / f"{p.stem}.jpg").exists())[:3]
    entries = {"dataset.yaml": (yolo / "dataset.yaml").read_bytes()}
    for stem in stems:
        entries[f"images/train/{stem}.jpg"] = (yolo / "images" / "train" / f"{stem}.jpg").read_bytes()
        entries[f"labels/train/{stem}.txt"] = (yolo / "labels" / "train" / f"{stem}.txt").read_bytes()
    response = client.post(f"/api/v1/views/{view['id']}/import", files={"file": ("coco.zip", zip_bytes(entries), "application/zip")})
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["format"] == "yolo" and report["annotated"] == 3
    lines = sum(len((yolo / "labels" / "train" / f"{s}.txt").read_text().split()) // 5 for s in stems)
    stored = client.get(f"/api/v1/views/{view['id']}/annotations").json()["items"]
    assert sum(len(a["boxes"]) for a in stored) == report["summary"]["boxes"] == lines - sum(report["summary"]["skipped"].values())


def test_import_csv_tags_into_a_tagging_view(client: TestClient, datasets_dir: Path) -> None:
    project = create_project(client)
    view = _view(client, project["id"], "tagging", [])
    coco = datasets_dir / "coco128_coco"
    rows = (coco / "tags.csv").read_text().splitlines()
    header, chosen = rows[0], rows[1:5]
    entries = {"tags.csv": ("\n".join([header, *chosen]) + "\n").encode()}
    for row in chosen:
        path = row.split(",")[0]
        entries[path] = (coco / path).read_bytes()
    response = client.post(f"/api/v1/views/{view['id']}/import", files={"file": ("tags.zip", zip_bytes(entries), "application/zip")})
    assert response.status_code == 201, response.text
    annotations = {a["image_id"]: a["concepts"] for a in client.get(f"/api/v1/views/{view['id']}/annotations").json()["items"]}
    assert len(annotations) == 4
    assert sorted(sorted(tags) for tags in annotations.values()) == sorted(sorted(r.split(",")[1].split(";")) for r in chosen)
