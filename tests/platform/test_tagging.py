"""Tagging on the platform without a worker (snapshot, dataset for the engine, headline), and one split per view."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from platform_support import annotated_classification_view, create_project, upload
from visiontrain.services.platform import Platform

TINY = {"epochs": 2, "augmented_copies": 0, "image_size": 96, "batch_size": 8}


def tagging_view(client: TestClient, files: dict[str, list[Path]]) -> tuple[dict, dict, list[dict], dict]:  # type: ignore[type-arg]
    """16 real photos tagged: 'ant'/'bee' by folder, 'many' on every third, 4 of them without concept."""
    project = create_project(client)
    view = client.post(
        f"/api/v1/projects/{project['id']}/views", json={"name": "tags", "kind": "tagging", "concepts": ["ant", "bee", "many"]}
    ).json()
    images, items = [], []
    for label, paths in files.items():
        for index, image in enumerate(upload(client, project["id"], paths)):
            concepts = [] if index >= 6 else [label.rstrip("s")] + (["many"] if index % 3 == 0 else [])
            images.append({**image, "concepts": concepts})
            items.append({"image_id": image["id"], "concepts": concepts})
    response = client.post(f"/api/v1/views/{view['id']}/annotations/batch", json={"items": items})
    assert response.status_code == 200, response.text
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "tagger"}).json()
    return project, view, images, model


def sides_of(client: TestClient, version_id: int) -> dict[int, str]:
    return {s["image_id"]: s["split"] for s in client.get(f"/api/v1/versions/{version_id}/samples").json()}


def test_a_tagging_version_has_one_row_per_image_with_its_concepts(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, _, images, model = tagging_view(client, ant_and_bee_files)
    response = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY})
    assert response.status_code == 201, response.text
    version = response.json()
    samples = client.get(f"/api/v1/versions/{version['id']}/samples").json()
    assert version["sample_count"] == len(samples) == 16  # one row per image, not one per annotation
    by_image = {s["image_id"]: s for s in samples}
    for image in images:
        assert sorted(by_image[image["id"]]["annotation"]) == sorted(image["concepts"])
    assert sum(s["annotation"] == [] for s in samples) == 4  # without concept: kept, as all-negative examples
    for concept in ("ant", "bee", "many"):
        assert {s["split"] for s in samples if concept in s["annotation"]} == {"train", "val"}
    assert version["data_split"]["source"] == "view" and version["data_split"]["validation_images"] == sum(
        s["split"] == "val" for s in samples
    )


def test_the_worker_gives_the_engine_a_tagging_dataset(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.jobs.worker import TrainingWorker

    _, _, images, model = tagging_view(client, ant_and_bee_files)
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    settings, spec = TrainingWorker(platform)._load_job(version["id"])
    assert spec.task == "tagging" and spec.classes == ["ant", "bee", "many"]
    assert settings.epochs == 2
    samples = spec.train + spec.val
    assert len(samples) == 16 and all(isinstance(s.labels, tuple) and s.path.is_file() for s in samples)
    assert sorted(sorted(s.labels) for s in samples) == sorted(sorted(i["concepts"]) for i in images)
    assert sum(s.labels == () for s in samples) == 4


def test_a_concept_without_images_on_one_side_is_a_422_naming_it(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project = create_project(client)
    view = client.post(
        f"/api/v1/projects/{project['id']}/views", json={"name": "t", "kind": "tagging", "concepts": ["ant", "rare"]}
    ).json()
    images = upload(client, project["id"], ant_and_bee_files["ants"][:6])
    items = [{"image_id": im["id"], "concepts": ["ant"] + (["rare"] if i == 0 else [])} for i, im in enumerate(images)]
    client.post(f"/api/v1/views/{view['id']}/annotations/batch", json={"items": items})
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m"}).json()
    response = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY})
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "'rare' (" in message and "'ant'" not in message and "at least one image showing it" in message


def test_headline_is_the_monitored_metric() -> None:
    from visiontrain.services.versions import headline_metric
    from visiontrain.store.models import ModelVersion

    tagging = ModelVersion(summary={"task": "tagging", "monitor": "val_map"}, best_metrics={"val_map": 0.8, "val_accuracy": 0.9})
    assert headline_metric(tagging) == {"name": "val_map", "value": 0.8}
    old = ModelVersion(summary={"status": "succeeded"}, best_metrics={"val_accuracy": 0.75})  # before summaries named it
    assert headline_metric(old) == {"name": "val_accuracy", "value": 0.75}
    assert headline_metric(ModelVersion(summary=None, best_metrics=None)) is None


# --- one split per view


def test_every_version_of_a_view_is_judged_on_the_same_validation_images(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, view, model = annotated_classification_view(client, ant_and_bee_files)
    first = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    # Another seed and another fraction do not move the view's split: the versions stay comparable.
    second = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": {**TINY, "seed": 7, "validation_split": 0.4}}).json()
    assert sides_of(client, first["id"]) == sides_of(client, second["id"])
    assert first["data_split"]["validation_digest"] == second["data_split"]["validation_digest"]
    assert any("view's split" in w for w in second["data_split"]["warnings"]) and first["data_split"]["warnings"] == []
    # Another model on the same view (a new name, the same concepts) is judged on the same images too.
    other = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "again"}).json()
    third = client.post(f"/api/v1/models/{other['id']}/versions", json={"settings": TINY}).json()
    assert sides_of(client, third["id"]) == sides_of(client, first["id"])
    split = client.get(f"/api/v1/views/{view['id']}/split").json()
    assert split["made"] and split["validation_split"] == 0.2 and split["seed"] == 42 and split["generation"] == 0
    assert split["val"] == first["data_split"]["validation_images"] and split["train"] + split["val"] == 16
    assert split["concepts"]["ants"]["val"] >= 1 and split["concepts"]["bees"]["val"] >= 1


def test_new_images_extend_the_split_without_moving_old_ones(client: TestClient, ant_and_bee_files, datasets_dir: Path) -> None:  # type: ignore[no-untyped-def]
    first_half = {label: paths[:4] for label, paths in ant_and_bee_files.items()}
    project, view, model = annotated_classification_view(client, first_half)
    before = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    old_sides = sides_of(client, before["id"])
    extra = {label: sorted((datasets_dir / "ants_bees" / "train" / label).glob("*.jpg"))[20:30] for label in ("ants", "bees")}
    items = [{"image_id": im["id"], "concept": label} for label, paths in extra.items() for im in upload(client, project["id"], paths)]
    assert client.post(f"/api/v1/views/{view['id']}/annotations/batch", json={"items": items}).status_code == 200
    after = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    new_sides = sides_of(client, after["id"])
    assert {i: new_sides[i] for i in old_sides} == old_sides  # nothing moved
    assert len(new_sides) == 28
    labels = {s["image_id"]: s["annotation"] for s in client.get(f"/api/v1/versions/{after['id']}/samples").json()}
    for label in ("ants", "bees"):  # 14 images each now: round(14 * 0.2) = 3 in validation
        assert sum(1 for i, side in new_sides.items() if side == "val" and labels[i] == label) == 3


def test_resplit_moves_images_and_fixed_sides_stay(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, view, images, model = tagging_view(client, ant_and_bee_files)
    first = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    pinned = images[1]["id"]
    assert client.put(f"/api/v1/views/{view['id']}/split", json={"image_ids": [pinned], "split": "train"}).status_code == 200
    response = client.post(f"/api/v1/views/{view['id']}/split/resplit", json={"validation_split": 0.5, "seed": 3})
    assert response.status_code == 200, response.text
    split = response.json()
    assert split["generation"] == 1 and split["validation_split"] == 0.5 and split["seed"] == 3
    assert split["fixed_train"] == 1 and split["warnings"] == []
    assert 6 <= split["val"] <= 10
    second = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    assert second["data_split"]["generation"] == 1
    assert second["data_split"]["validation_digest"] != first["data_split"]["validation_digest"]
    assert sides_of(client, second["id"])[pinned] == "train"
    assert sides_of(client, first["id"]) != sides_of(client, second["id"])  # the old version keeps its own
    # The same re-split again gives the same sides: seeded.
    again = client.post(f"/api/v1/views/{view['id']}/split/resplit", json={"validation_split": 0.5, "seed": 3}).json()
    third = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    assert again["generation"] == 2 and sides_of(client, third["id"]) == sides_of(client, second["id"])
    bad = client.post(f"/api/v1/views/{view['id']}/split/resplit", json={"validation_split": 1.5})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "validation_split"


def test_split_preview_before_any_version_stores_nothing(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, view, _, model = tagging_view(client, ant_and_bee_files)
    preview = client.get(f"/api/v1/views/{view['id']}/split").json()
    assert preview["made"] is False and preview["images"] == 16 and preview["warnings"] == []
    for concept in ("ant", "bee", "many"):
        assert preview["concepts"][concept]["train"] >= 1 and preview["concepts"][concept]["val"] >= 1
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    assert version["data_split"]["validation_images"] == preview["val"]  # the preview is what the version got
    assert client.get(f"/api/v1/views/{view['id']}/split").json()["made"] is True


def test_prediction_schema_keeps_on_and_threshold_for_tags_only() -> None:
    from visiontrain.api.schemas.training import Prediction

    tagged = Prediction(file="a.jpg", predictions=[{"label": "dog", "probability": 0.7, "on": True, "threshold": 0.41}])
    assert tagged.model_dump()["predictions"] == [{"label": "dog", "probability": 0.7, "on": True, "threshold": 0.41}]
    classified = Prediction(file="a.jpg", predictions=[{"label": "ants", "probability": 0.9}])
    assert classified.model_dump()["predictions"] == [{"label": "ants", "probability": 0.9}]  # unchanged shape


def test_the_largest_seed_is_stored_on_every_database(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    # 2**32 - 1 is a valid seed; a 32-bit INTEGER column took it on SQLite and refused it on PostgreSQL (a 500).
    _, view, _, model = tagging_view(client, ant_and_bee_files)
    response = client.post(f"/api/v1/views/{view['id']}/split/resplit", json={"seed": 2**32 - 1})
    assert response.status_code == 200, response.text
    assert client.get(f"/api/v1/views/{view['id']}/split").json()["seed"] == 2**32 - 1
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": {**TINY, "seed": 2**32 - 1}})
    assert version.status_code == 201, version.text
