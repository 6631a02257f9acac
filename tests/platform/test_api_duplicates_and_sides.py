"""Byte-identical files are named, not merged silently: an import, a zip upload and a plain upload list
each file that added nothing and the image it repeats. The listing with a view says each image's side."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from platform_support import create_project, upload, zip_bytes


def _view(client: TestClient, project_id: int, name: str = "species") -> dict:  # type: ignore[type-arg]
    response = client.post(f"/api/v1/projects/{project_id}/views", json={"name": name, "kind": "classification", "concepts": ["ants", "bees"]})
    assert response.status_code == 201, response.text
    return response.json()


def test_an_import_lists_each_duplicate_and_what_it_repeats(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    ants, bees = ant_and_bee_files["ants"], ant_and_bee_files["bees"]
    project = create_project(client)
    [already] = upload(client, project["id"], [bees[0]])  # in the project before the import, under its own name
    view = _view(client, project["id"])
    archive = zip_bytes({
        **{f"ants/{p.name}": p.read_bytes() for p in ants[:3]},
        **{f"bees/{p.name}": p.read_bytes() for p in bees[:3]},
        f"ants/copy-{ants[0].name}": ants[0].read_bytes(),  # same bytes as an earlier file, same label
        f"bees/renamed-{ants[1].name}": ants[1].read_bytes(),  # same bytes, another label: the later one is kept
    })
    response = client.post(f"/api/v1/views/{view['id']}/import", files={"file": ("insects.zip", archive, "application/zip")})
    assert response.status_code == 201, response.text
    report = response.json()
    assert (report["images"], report["created"], report["duplicates"]) == (8, 5, 3)
    listed = {d["name"]: d for d in report["duplicate_files"]}
    assert set(listed) == {f"bees/{bees[0].name}", f"ants/copy-{ants[0].name}", f"bees/renamed-{ants[1].name}"}
    assert listed[f"bees/{bees[0].name}"] == {
        "name": f"bees/{bees[0].name}", "image_id": already["id"], "same_as": bees[0].name, "found_in": "project",
    }
    assert listed[f"ants/copy-{ants[0].name}"]["same_as"] == f"ants/{ants[0].name}"
    assert listed[f"ants/copy-{ants[0].name}"]["found_in"] == "upload"
    assert listed[f"bees/renamed-{ants[1].name}"]["same_as"] == f"ants/{ants[1].name}"
    # Two labels for one image: the person is told which one it keeps.
    [warning] = [w for w in report["warnings"] if "same bytes" in w]
    assert f"bees/renamed-{ants[1].name}" in warning and f"ants/{ants[1].name}" in warning
    kept = client.get(f"/api/v1/views/{view['id']}/annotations/{listed[f'bees/renamed-{ants[1].name}']['image_id']}").json()
    assert kept["concepts"] == ["bees"]


def test_zip_and_plain_uploads_list_their_duplicates(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    ants = ant_and_bee_files["ants"]
    project = create_project(client)
    archive = zip_bytes({"day1/a.jpg": ants[0].read_bytes(), "day2/a-again.jpg": ants[0].read_bytes(), "day2/b.jpg": ants[1].read_bytes()})
    zipped = client.post(f"/api/v1/projects/{project['id']}/images/archive", files={"file": ("trip.zip", archive, "application/zip")})
    assert zipped.status_code == 201, zipped.text
    assert (zipped.json()["created"], zipped.json()["duplicates"]) == (2, 1)
    [repeat] = zipped.json()["duplicate_files"]
    assert (repeat["name"], repeat["same_as"], repeat["found_in"]) == ("day2/a-again.jpg", "day1/a.jpg", "upload")
    again = client.post(
        f"/api/v1/projects/{project['id']}/images", files=[("files", ("mine.jpg", ants[1].read_bytes(), "image/jpeg"))]
    ).json()
    [repeat] = again["duplicate_files"]
    assert (repeat["name"], repeat["same_as"], repeat["found_in"]) == ("mine.jpg", "b.jpg", "project")
    fresh = client.post(f"/api/v1/projects/{project['id']}/images", files=[("files", (ants[2].name, ants[2].read_bytes(), "image/jpeg"))])
    assert fresh.json()["duplicate_files"] == []


def test_the_listing_gives_each_images_side_in_the_views_split(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    files: list[Path] = ant_and_bee_files["ants"][:6] + ant_and_bee_files["bees"][:6]
    project = create_project(client)
    images = upload(client, project["id"], files)
    view = _view(client, project["id"])
    for image, path in zip(images, files, strict=True):
        label = "ants" if path in ant_and_bee_files["ants"] else "bees"
        assert client.put(f"/api/v1/views/{view['id']}/annotations/{image['id']}", json={"concept": label}).status_code == 200
    listing = lambda: {i["id"]: i["side"] for i in client.get(  # noqa: E731
        f"/api/v1/projects/{project['id']}/images", params={"view_id": view["id"]}).json()["items"]}
    assert set(listing().values()) == {None}  # no version trained yet: the split has placed nothing
    split = client.post(f"/api/v1/views/{view['id']}/split/resplit", json={"validation_split": 0.5, "seed": 3})
    assert split.status_code == 200, split.text
    sides = listing()
    assert sorted(sides.values()).count("val") == split.json()["val"] and set(sides.values()) == {"train", "val"}
    # A side the person fixes wins; once validation images are fixed, every other image trains.
    fixed = images[0]["id"] if sides[images[0]["id"]] == "train" else images[1]["id"]
    assert client.put(f"/api/v1/views/{view['id']}/split", json={"image_ids": [fixed], "split": "val"}).status_code == 200
    sides = listing()
    assert sides[fixed] == "val" and [i for i, s in sides.items() if s == "val"] == [fixed]
    # Without a view there is no side to give.
    assert {i["side"] for i in client.get(f"/api/v1/projects/{project['id']}/images").json()["items"]} == {None}
