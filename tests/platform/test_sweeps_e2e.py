"""Sweeps on the platform, end to end with real worker processes: two workers share one sweep's trials in the
Optuna study kept in the platform's database, the best trial becomes a normal version trained from cached
features; bad requests are 4xx."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from platform_support import annotated_classification_view, create_project
from test_worker_e2e import Workers, wait_for, workers  # noqa: F401  (the fixture)

pytestmark = pytest.mark.slow

# Trials long enough (no early stop, one-image batches) for both workers to take some.
BASE = {"image_size": 96, "epochs": 4, "batch_size": 1}


def test_two_workers_run_one_sweep_and_its_best_becomes_a_version(client: TestClient, workers: Workers,  # noqa: F811
                                                                   platform, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from visiontrain.store.models import Worker

    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    workers.start()
    workers.start()

    def registered() -> bool:
        with platform.sessions() as session:
            return session.scalar(select(func.count()).select_from(Worker)) == 2

    wait_for(registered, 120, "both workers to start", workers)
    created = client.post(f"/api/v1/models/{model['id']}/sweeps", json={"trials": 6, "seed": 3, "settings": BASE})
    assert created.status_code == 201, created.text
    sweep = created.json()
    assert sweep["status"] == "queued" and sweep["trials_started"] == 0 and sweep["results"] == []
    assert sweep["monitor"] == "val_accuracy" and "learning_rate" in sweep["searched"]
    assert sweep["settings"]["epochs"] == 4 and sweep["settings"]["optimizer"] == "adam"  # the base, whole

    def finished() -> dict | None:  # type: ignore[type-arg]
        body = client.get(f"/api/v1/sweeps/{sweep['id']}").json()
        return body if body["status"] not in ("queued", "running") else None

    done = wait_for(finished, 600, "the sweep to finish", workers)
    assert done["status"] == "succeeded", (done, workers.logs())
    assert done["trials_started"] == 6 and done["best_version_id"] is not None
    results = done["results"]
    assert sorted(r["number"] for r in results) == list(range(6)) and [r["rank"] for r in results] == list(range(1, 7))
    assert {r["state"] for r in results} <= {"complete", "pruned", "failed"} and results[0]["state"] == "complete"
    complete = [r["val_accuracy"] for r in results if r["state"] == "complete"]
    assert complete == sorted(complete, reverse=True)

    # The best trial is a normal version: its settings, the sweep's images, trained by a worker from cached features.
    version_id = done["best_version_id"]
    version = wait_for(lambda: (v := client.get(f"/api/v1/versions/{version_id}").json())["status"] in ("succeeded", "failed") and v,
                       600, "the best version to train", workers)
    assert version["status"] == "succeeded", (version["error"], workers.logs())
    top = results[0]
    for name in done["searched"]:
        if top.get(name) is not None:
            assert version["settings"][name] == pytest.approx(top[name]), name
    assert version["settings"]["epochs"] == 4 and version["name"] == f"sweep {sweep['id']} best"
    assert version["summary"]["counts"]["cache_misses"] == 0
    assert version["sample_count"] == sum(len(v) for v in ant_and_bee_files.values())
    listed = client.get(f"/api/v1/models/{model['id']}/sweeps").json()
    assert [s["id"] for s in listed] == [sweep["id"]] and listed[0]["best_version_id"] == version_id
    assert client.post(f"/api/v1/sweeps/{sweep['id']}/cancel").status_code == 409
    # Both workers took trials of the one sweep (each logs the trials it ran).
    logs = [p.read_text() for p in sorted(workers.log_dir.glob("worker-*.log"))]
    assert all(f"sweep {sweep['id']}: trial" in log for log in logs), workers.logs()


def test_bad_sweep_requests_are_4xx(client: TestClient, other_org_client: TestClient, ant_and_bee_files) -> None:  # type: ignore[no-untyped-def]
    _, _, model = annotated_classification_view(client, ant_and_bee_files)
    url = f"/api/v1/models/{model['id']}/sweeps"
    assert client.post(url, json={"trials": 0}).status_code == 422
    assert client.post(url, json={"trials": 5, "settings": {"dropout": 3}}).status_code == 422
    assert client.post(url, json={"trials": 5, "settings": {"weights_path": "/etc/passwd"}}).status_code == 422
    assert client.post(url, json={"trials": 5, "colour": "red"}).status_code == 422
    assert other_org_client.post(url, json={"trials": 5}).status_code == 404
    created = client.post(url, json={"trials": 5}).json()
    assert other_org_client.get(f"/api/v1/sweeps/{created['id']}").status_code == 404
    cancelled = client.post(f"/api/v1/sweeps/{created['id']}/cancel")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert client.get("/api/v1/sweeps/999999").status_code == 404

    project = create_project(client, "Boxes")
    view = client.post(f"/api/v1/projects/{project['id']}/views",
                       json={"name": "boxes", "kind": "detection", "concepts": ["ant"]}).json()
    detector = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "finder"}).json()
    refused = client.post(f"/api/v1/models/{detector['id']}/sweeps", json={"trials": 3})
    assert refused.status_code == 422 and "whole detector" in refused.text
