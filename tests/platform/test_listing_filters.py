"""The image listing's filters (concept, fixed side, annotated or not) and pages give exactly the images
that match, in id order, with the right total, on real photos (the concept and side filters are IN
subqueries since the scale work)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from platform_support import annotated_classification_view, upload


def _ids(client: TestClient, project_id: int, **query: object) -> tuple[list[int], int]:
    response = client.get(f"/api/v1/projects/{project_id}/images", params=query)
    assert response.status_code == 200, response.text
    page = response.json()
    return [item["id"] for item in page["items"]], page["total"]


def test_filters_and_pages_give_the_matching_images(client: TestClient, ant_and_bee_files, datasets_dir) -> None:  # type: ignore[no-untyped-def]
    project, view, _ = annotated_classification_view(client, ant_and_bee_files)
    concepts = {c["name"]: c["id"] for c in client.get(f"/api/v1/views/{view['id']}/concepts").json()}
    extra = upload(client, project["id"], sorted((datasets_dir / "ants_bees" / "val" / "bees").glob("*.jpg"))[:3])
    everything, total = _ids(client, project["id"], limit=100)
    assert total == 19 and everything == sorted(everything)
    ants, total_ants = _ids(client, project["id"], view_id=view["id"], concept_id=concepts["ants"], limit=100)
    bees, _ = _ids(client, project["id"], view_id=view["id"], concept_id=concepts["bees"], limit=100)
    assert total_ants == len(ants) == 8 and len(bees) == 8 and ants == sorted(ants) and not set(ants) & set(bees)
    assert set(ants) | set(bees) | {i["id"] for i in extra} == set(everything)
    held_out = [ants[1], bees[0], bees[5]]
    response = client.put(f"/api/v1/views/{view['id']}/split", json={"image_ids": held_out, "split": "test"})
    assert response.status_code == 200, response.text
    assert _ids(client, project["id"], view_id=view["id"], split="test") == (sorted(held_out), 3)
    assert _ids(client, project["id"], view_id=view["id"], split="val") == ([], 0)
    assert _ids(client, project["id"], view_id=view["id"], split="test", concept_id=concepts["bees"]) == (sorted(held_out[1:]), 2)
    assert _ids(client, project["id"], view_id=view["id"], unannotated=True) == ([i["id"] for i in extra], 3)
    assert _ids(client, project["id"], view_id=view["id"], unannotated=False, limit=100)[1] == 16
    assert _ids(client, project["id"], view_id=view["id"], concept_id=concepts["ants"], offset=5, limit=2) == (ants[5:7], 8)
    assert _ids(client, project["id"], offset=17, limit=5) == (everything[17:], 19)
