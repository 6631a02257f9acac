"""GET /versions/{id}/advice: what to try next, from a version trained by a real worker on real photos."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from platform_support import annotated_classification_view
from visiontrain.services.platform import Platform

TINY = {"epochs": 3, "augmented_copies": 0, "image_size": 96, "batch_size": 8, "early_stopping": False}


def _train_queued(platform: Platform) -> None:
    from visiontrain.jobs.worker import TrainingWorker

    TrainingWorker(platform).run(max_jobs=1)


@pytest.mark.slow
def test_advice_for_a_queued_then_trained_version(client: TestClient, platform: Platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    # A learning rate of 3 throws the head's weights far off from the first epoch.
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": {**TINY, "learning_rate": 3.0}}).json()
    queued = client.get(f"/api/v1/versions/{version['id']}/advice")
    assert queued.status_code == 200
    assert queued.json() == {"items": [], "reason": "version v1 is queued: advice comes from its curves once it has finished"}

    _train_queued(platform)
    assert client.get(f"/api/v1/versions/{version['id']}").json()["status"] == "succeeded"
    advice = client.get(f"/api/v1/versions/{version['id']}/advice").json()
    assert advice["reason"] is None
    rules = [item["rule"] for item in advice["items"]]
    assert rules[0] == "learning_rate_too_high", advice
    rate = advice["items"][0]
    assert rate["changes"] == {"learning_rate": 0.3, "gradient_clip_norm": 1.0}
    assert rate["current"] == {"learning_rate": 3.0, "gradient_clip_norm": 0.0}
    assert "learning rate 3" in rate["evidence"]
    # 16 photos split by the view: a handful per concept for validation, fixed by the view's split.
    few = advice["items"][rules.index("few_validation_images")]
    assert "validation images: one image moves its score by" in few["evidence"]

    # The advice applies as it is: the next version with these settings is accepted and trains.
    settings = {**client.get(f"/api/v1/versions/{version['id']}").json()["settings"], **rate["changes"]}
    following = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": settings})
    assert following.status_code == 201, following.text
    _train_queued(platform)
    first, second = (client.get(f"/api/v1/versions/{v}").json()["best_metrics"] for v in (version["id"], following.json()["id"]))
    assert second["val_loss"] < first["val_loss"] / 2
    # Still high on 10 training photos? Then the next step down, from the new version's own settings.
    for item in client.get(f"/api/v1/versions/{following.json()['id']}/advice").json()["items"]:
        if item["rule"] == "learning_rate_too_high":
            assert item["changes"] == {"learning_rate": 0.03}  # the gradient is clipped already


def test_advice_of_an_unknown_or_foreign_version_is_404(client: TestClient, other_org_client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/api/v1/versions/999999/advice").status_code == 404
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": TINY}).json()
    assert other_org_client.get(f"/api/v1/versions/{version['id']}/advice").status_code == 404
    assert client.get("/api/v1/versions/0/advice").status_code in (404, 422)
