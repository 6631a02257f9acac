"""Models and versions through the API, without a worker: validation, snapshot, queue states."""

from __future__ import annotations

from fastapi.testclient import TestClient

from platform_support import annotated_classification_view, create_project
from visiontrain.settings import TrainingSettings

TINY = {"epochs": 2, "augmented_copies": 0, "image_size": 96, "batch_size": 8}


def test_settings_schema_has_defaults_descriptions_and_groups(client: TestClient) -> None:
    body = client.get("/api/v1/settings/schema").json()
    assert set(body) == {"schema", "groups", "defaults"}
    assert body["defaults"] == TrainingSettings().model_dump(mode="json")
    learning_rate = body["schema"]["properties"]["learning_rate"]
    assert learning_rate["description"] and learning_rate["group"] == "Optimizer"
    assert "learning_rate" in body["groups"]["Optimizer"]


def test_version_gets_defaults_and_a_snapshot(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, view, model = annotated_classification_view(client, ant_and_bee_files)
    response = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY})
    assert response.status_code == 201, response.text
    version = response.json()
    assert version["name"] == "v1" and version["status"] == "queued"
    assert version["settings"] == TrainingSettings(**TINY).model_dump(mode="json")
    samples = client.get(f"/api/v1/versions/{version['id']}/samples").json()
    assert len(samples) == version["sample_count"] == 16
    by_side = {side: [s for s in samples if s["split"] == side] for side in ("train", "val")}
    for label in ("ants", "bees"):  # stratified: both concepts on both sides
        assert any(s["annotation"] == label for s in by_side["train"])
        assert any(s["annotation"] == label for s in by_side["val"])
    # Later edits do not change the version's data.
    first = samples[0]
    other = "bees" if first["annotation"] == "ants" else "ants"
    client.put(f"/api/v1/views/{view['id']}/annotations/{first['image_id']}", json={"concept": other})
    assert client.get(f"/api/v1/versions/{version['id']}/samples").json()[0]["annotation"] == first["annotation"]
    second = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    assert second["name"] == "v2"


def test_fixed_validation_images_are_the_validation_set(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, view, model = annotated_classification_view(client, ant_and_bee_files)
    annotations = client.get(f"/api/v1/views/{view['id']}/annotations").json()["items"]
    chosen = [next(a["image_id"] for a in annotations if a["concepts"] == [label]) for label in ("ants", "bees")]
    client.put(f"/api/v1/views/{view['id']}/split", json={"image_ids": chosen, "split": "val"})
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    samples = client.get(f"/api/v1/versions/{version['id']}/samples").json()
    assert sorted(s["image_id"] for s in samples if s["split"] == "val") == sorted(chosen)


def test_bad_settings_are_422_with_field_paths_and_nothing_is_queued(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    url = f"/api/v1/models/{model['id']}/versions"
    out_of_range = client.post(url, json={"settings": {"epochs": 0, "learning_rate": -1}})
    assert out_of_range.status_code == 422
    assert {tuple(e["loc"]) for e in out_of_range.json()["detail"]} == {
        ("body", "settings", "epochs"), ("body", "settings", "learning_rate")
    }
    unknown = client.post(url, json={"settings": {"epoch": 3}})
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", "settings", "epoch"]
    combination = client.post(url, json={"settings": {"fine_tune": True, "fine_tune_learning_rate": 0.01}})
    assert combination.status_code == 422 and "fine_tune_learning_rate" in combination.json()["detail"][0]["msg"]
    server_file = client.post(url, json={"settings": {"weights_path": "/etc/passwd"}})
    assert server_file.status_code == 422 and server_file.json()["detail"][0]["loc"] == ["body", "settings", "weights_path"]
    assert client.get(url).json() == []


def test_too_few_annotations_is_a_clear_422(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    few = {"ants": ant_and_bee_files["ants"][:1], "bees": ant_and_bee_files["bees"][:3]}
    _, _, model = annotated_classification_view(client, few)
    response = client.post(f"/api/v1/models/{model['id']}/versions", json={})
    assert response.status_code == 422
    assert "'ants'" in response.json()["detail"][0]["msg"]


def test_a_detection_model_without_boxes_is_a_422_naming_its_concepts(client: TestClient) -> None:
    # Every kind trains now (detection end to end: tests/platform/test_detection_e2e.py); with no box drawn,
    # the refusal names each concept and what is missing.
    project = create_project(client)
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "d", "kind": "detection", "concepts": ["a", "b"]}).json()
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m"}).json()
    response = client.post(f"/api/v1/models/{model['id']}/versions", json={})
    assert response.status_code == 422
    message = response.json()["detail"][0]["msg"]
    assert "'a' (0 training, 0 validation)" in message and "'b' (0 training, 0 validation)" in message


def test_model_needs_two_known_concepts(client: TestClient) -> None:
    project = create_project(client)
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "v", "kind": "classification", "concepts": ["a", "b"]}).json()
    assert client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m", "concepts": ["a"]}).status_code == 422
    unknown = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m", "concepts": ["a", "zzz"]})
    assert unknown.status_code == 422 and "zzz" in unknown.json()["detail"][0]["msg"]
    assert client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m", "concepts": ["b", "a"]}).json()["concepts"] == ["a", "b"]


def test_cancel_and_delete_a_queued_version(client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    project, _, model = annotated_classification_view(client, ant_and_bee_files)
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    assert client.delete(f"/api/v1/versions/{version['id']}").status_code == 409  # still queued
    assert client.delete(f"/api/v1/models/{model['id']}").status_code == 409
    cancelled = client.post(f"/api/v1/versions/{version['id']}/cancel").json()
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    assert client.post(f"/api/v1/versions/{version['id']}/cancel").status_code == 409
    listed = client.get(f"/api/v1/models/{model['id']}/versions").json()
    assert [(v["name"], v["status"], v["headline"]) for v in listed] == [("v1", "cancelled", None)]
    assert client.get(f"/api/v1/versions/{version['id']}/artifacts/checkpoint").status_code == 404
    assert client.post(f"/api/v1/versions/{version['id']}/predict", files=[("files", ("a.jpg", b"x", "image/jpeg"))]).status_code == 409
    assert client.delete(f"/api/v1/versions/{version['id']}").status_code == 204
    assert client.get(f"/api/v1/versions/{version['id']}").status_code == 404
    # A project goes with all it holds (views, models, versions), once nothing of it is training.
    queued = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    refused = client.delete(f"/api/v1/projects/{project['id']}")
    assert refused.status_code == 409 and "cancel" in refused.json()["detail"]
    client.post(f"/api/v1/versions/{queued['id']}/cancel")
    assert client.delete(f"/api/v1/projects/{project['id']}").status_code == 204
    assert client.get(f"/api/v1/models/{model['id']}").status_code == 404


def test_settings_that_cannot_run_here_are_422_naming_the_field_and_what_works(  # type: ignore[no-untyped-def]
    client: TestClient, ant_and_bee_files, monkeypatch
) -> None:
    """They validate anywhere but would fail the run seconds later on this machine: refused at creation."""
    from visiontrain import settings_check

    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    url = f"/api/v1/models/{model['id']}/versions"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # an offline machine, whatever this one is
    monkeypatch.setattr(settings_check, "gpu_count", lambda: 0)  # and one without a GPU
    monkeypatch.setattr(settings_check, "cpu_count", lambda: 2)  # with two cores

    def refused(settings: dict, field: str) -> str:
        response = client.post(url, json={"settings": {**TINY, **settings}})
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert [tuple(e["loc"]) for e in detail] == [("body", "settings", field)], detail
        return detail[0]["msg"]

    message = refused({"backbone": "resnet18"}, "backbone")
    assert "cannot reach" in message and "efficientnet_lite0, efficientnet_lite1, efficientnet_lite2" in message
    assert "resnet18" not in message.split("work here:")[1]
    assert "no CUDA GPU" in refused({"accelerator": "gpu"}, "accelerator") and "auto, cpu" in refused({"accelerator": "gpu"}, "accelerator")
    assert "1, 2, auto" in refused({"devices": 9999}, "devices")  # on the CPU a device is a process: at most one per core
    assert "4294967295" in refused({"seed": 2**32}, "seed")
    for field, value in (("epochs", True), ("epochs", "2"), ("batch_size", 8.0), ("fine_tune", 1), ("learning_rate", "0.1")):
        refused({field: value}, field)

    monkeypatch.setattr(settings_check, "gpu_count", lambda: 2)  # a machine with two GPUs: 3 is too many
    assert "1, 2, auto" in refused({"devices": 3}, "devices")
    assert client.get(url).json() == []  # nothing was queued

    # What does run here is still accepted: an offline backbone, random weights, a float given as an int.
    for ok in ({"pretrained": False, "backbone": "resnet18"}, {"learning_rate": 1}, {"devices": 2, "accelerator": "gpu"}):
        response = client.post(url, json={"settings": {**TINY, **ok}})
        assert response.status_code == 201, (ok, response.text)


def test_settings_left_out_take_the_view_tasks_defaults_and_rules_see_them(client: TestClient) -> None:
    # A detection model: fine-tuning at 0.001 is a tenth of detection's learning rate (0.01), so it is allowed,
    # though it is above a tenth of the shared default (0.001); the same request on a classifier is a 422.
    project = create_project(client)
    settings = {"fine_tune": True, "fine_tune_learning_rate": 0.001}
    for kind, accepted in (("detection", True), ("classification", False)):
        view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": kind, "kind": kind, "concepts": ["a", "b"]}).json()
        model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m"}).json()
        response = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": settings})
        assert response.status_code == 422
        message = response.json()["detail"][0]["msg"]
        if accepted:  # refused only for want of boxes, after the settings were accepted
            assert "0 training, 0 validation" in message, message
        else:
            assert "fine_tune_learning_rate (0.001) must be at most learning_rate / 10" in message
            assert response.json()["detail"][0]["loc"] == ["body", "settings"]
    bad = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": {"epochs": 0}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:3] == ["body", "settings", "epochs"]
