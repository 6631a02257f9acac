"""The experiment assistant's routes on a view: settings suggested from its real split (changing nothing),
and the learning-rate range test on its images (features into the server's cache), with their 4xx cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from platform_support import annotated_classification_view, create_project


def _view(client: TestClient, files: dict[str, list[Path]]) -> dict:  # type: ignore[type-arg]
    _, view, _ = annotated_classification_view(client, files)
    return view


def test_suggestions_count_the_split_the_next_version_would_train_on_and_change_nothing(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    view = _view(client, {"ants": ant_and_bee_files["ants"][:8], "bees": ant_and_bee_files["bees"][:4]})
    response = client.post(f"/api/v1/views/{view['id']}/suggested-settings", json={"settings": {"learning_rate": 0.01}})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["settings"]["validation_split"] == pytest.approx(0.4)  # 4 bees: the most held out
    counts = body["counts"]
    assert counts["train_images"] + counts["validation_images"] == 12
    assert counts["validation"]["bees"] + counts["train"]["bees"] == 4 and counts["validation"]["bees"] >= 1
    assert any("fewer than 20 training images" in w for w in body["warnings"])
    assert [q["setting"] for q in body["questions"]] == ["horizontal_flip", "color", "vertical_flip"]
    assert client.get(f"/api/v1/views/{view['id']}/split").json()["made"] is False  # nothing was stored
    assert client.get(f"/api/v1/views/{view['id']}/models").json() != []  # the fixture's model, and no other change


def test_a_views_stored_split_and_fixed_validation_images_are_left_untouched(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    view = _view(client, ant_and_bee_files)
    split = client.post(f"/api/v1/views/{view['id']}/split/resplit", json={"validation_split": 0.25, "seed": 5}).json()
    body = client.post(f"/api/v1/views/{view['id']}/suggested-settings", json={}).json()
    assert "validation_split" not in body["settings"]
    assert body["kept"]["validation_split"].startswith("untouched: the view's split (25% held out, seed 5")
    assert {c: body["counts"]["validation"][c] for c in ("ants", "bees")} == {c: n["val"] for c, n in split["concepts"].items()}

    listing = client.get(f"/api/v1/projects/{view['project_id']}/images", params={"view_id": view["id"], "limit": 50}).json()
    chosen = [item["id"] for item in listing["items"]][:3]
    assert client.put(f"/api/v1/views/{view['id']}/split", json={"image_ids": chosen, "split": "val"}).status_code == 200
    fixed = client.post(f"/api/v1/views/{view['id']}/suggested-settings", json={}).json()
    assert fixed["kept"]["validation_split"].startswith("untouched: the validation images you fixed")
    assert fixed["counts"]["validation_images"] == 3 and fixed["counts"]["train_images"] == 13


def test_suggestion_refusals_name_the_field(client: TestClient, other_org_client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    view = _view(client, {"ants": ant_and_bee_files["ants"][:4], "bees": ant_and_bee_files["bees"][:4]})
    url = f"/api/v1/views/{view['id']}/suggested-settings"
    unknown = client.post(url, json={"concepts": ["ants", "wasps"]})
    assert unknown.status_code == 422 and "wasps" in unknown.text and unknown.json()["detail"][0]["loc"] == ["body", "concepts"]
    bad = client.post(url, json={"settings": {"learning_rate": -1}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "settings", "learning_rate"]
    rule = client.post(url, json={"settings": {"fine_tune": True, "fine_tune_learning_rate": 0.01}})
    assert rule.status_code == 422 and "at most learning_rate / 10" in rule.text
    one = client.post(url, json={"concepts": ["ants"]})
    assert one.status_code == 422 and "at least 2 concept" in one.text
    assert other_org_client.post(url, json={}).status_code == 404


@pytest.mark.slow
def test_the_learning_rate_test_runs_on_the_views_images_and_fills_the_servers_feature_cache(
    client: TestClient, ant_and_bee_files, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    view = _view(client, ant_and_bee_files)
    # A cache of this test's own: earlier tests may have computed these images' features already.
    monkeypatch.setenv("VISIONTRAIN_CACHE_DIR", str(tmp_path / "feature-cache"))
    cache = Path(os.environ["VISIONTRAIN_CACHE_DIR"])
    before = sum(1 for p in cache.rglob("*") if p.is_file()) if cache.exists() else 0
    response = client.post(f"/api/v1/views/{view['id']}/lr-find",
                           json={"settings": {"image_size": 96, "augmented_copies": 0, "batch_size": 4}, "steps": 40})
    assert response.status_code == 200, response.text
    body = response.json()
    assert len(body["rates"]) == len(body["losses"]) == len(body["smoothed"]) >= 5
    assert body["rates"][0] == pytest.approx(1e-6) and body["rates"] == sorted(body["rates"])
    assert body["rates"][0] <= body["suggestion"] <= body["lowest_loss_rate"] / 10 * (1 + 1e-9)
    assert "steepest descent" in body["rule"] and "falls fastest" in body["reason"]
    assert body["images"] + 0 < 16 and body["features"] == body["images"]  # the training side only, no copies
    assert sum(1 for p in cache.rglob("*") if p.is_file()) > before  # the worker's cache: the next version reuses it
    assert client.get(f"/api/v1/views/{view['id']}/split").json()["made"] is False


def test_the_learning_rate_test_refuses_detection_and_unusable_requests(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client, "Boxes")
    detection = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "boxes", "kind": "detection", "concepts": ["ant"]}).json()
    refused = client.post(f"/api/v1/views/{detection['id']}/lr-find", json={})
    assert refused.status_code == 422 and "runs on a head over cached features" in refused.text
    assert "detection" in refused.json()["detail"][0]["msg"]

    view = _view(client, {"ants": ant_and_bee_files["ants"][:2], "bees": ant_and_bee_files["bees"][:1]})
    one_bee = client.post(f"/api/v1/views/{view['id']}/lr-find", json={})
    assert one_bee.status_code == 422 and "on both sides" in one_bee.text  # the same refusal as training
    assert client.post(f"/api/v1/views/{view['id']}/lr-find", json={"steps": 3}).status_code == 422
    assert client.post(f"/api/v1/views/{view['id']}/lr-find", json={"settings": {"weights_path": "/etc/passwd"}}).status_code == 422

