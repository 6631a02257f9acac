"""A held-out test split on the platform: imported as test, listed, never part of the validation
split, and handed to the engine as the version's test set (evaluated apart after training)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from platform_support import create_project
from test_worker_e2e import Workers, read_sse, workers  # noqa: F401 - the fixture
from visiontrain.services.platform import Platform


def import_with_test_folder(client: TestClient, datasets_dir: Path) -> tuple[dict, dict]:  # type: ignore[type-arg]
    """16 ants/bees photos in train/ and 4 in test/, imported into a classification view."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("ants", "bees"):
            photos = sorted((datasets_dir / "ants_bees" / "train" / label).glob("*.jpg"))[:8]
            for index, photo in enumerate(photos):
                side = "test" if index < 2 else "train"
                archive.write(photo, f"{side}/{label}/{photo.name}")
    project = create_project(client, "with a test split")
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "v", "kind": "classification", "concepts": []}).json()
    response = client.post(f"/api/v1/views/{view['id']}/import", files={"file": ("data.zip", buffer.getvalue(), "application/zip")})
    assert response.status_code == 201, response.text
    return project, view


def test_imported_test_images_are_kept_apart_through_to_the_engine(client: TestClient, platform: Platform, datasets_dir: Path) -> None:
    from visiontrain.jobs.worker import TrainingWorker

    project, view = import_with_test_folder(client, datasets_dir)

    listed = client.get(f"/api/v1/views/{view['id']}/annotations")
    assert listed.status_code == 200, listed.text  # a "test" split used to be refused by the response schema: a 500
    split = client.get(f"/api/v1/views/{view['id']}/split").json()
    assert (split["fixed_test"], split["train"] + split["val"]) == (4, 12)
    assert client.get(f"/api/v1/projects/{project['id']}/images", params={"view_id": view["id"], "split": "test"}).status_code == 200

    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m"}).json()
    created = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": {"epochs": 1}})
    assert created.status_code == 201, created.text
    version = created.json()
    assert version["data_split"]["test_images"] == 4 and version["data_split"]["train_images"] + version["data_split"]["validation_images"] == 12
    _, spec = TrainingWorker(platform)._load_job(version["id"])
    assert len(spec.test) == 4 and {s.label for s in spec.test} == {"ants", "bees"}
    assert not {s.path for s in spec.test} & {s.path for s in spec.train + spec.val}


@pytest.mark.slow
def test_a_worker_reports_the_test_set_apart(client: TestClient, workers: Workers, datasets_dir: Path) -> None:  # noqa: F811
    _, view = import_with_test_folder(client, datasets_dir)
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "m"}).json()
    workers.start()
    tiny = {"epochs": 2, "augmented_copies": 0, "image_size": 64, "batch_size": 8}
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": tiny}).json()
    events = read_sse(client, f"/api/v1/versions/{version['id']}/events")
    assert events[-1][1]["status"] == "succeeded", workers.logs()
    done = client.get(f"/api/v1/versions/{version['id']}").json()
    assert done["summary"]["test"]["num_images"] == 4 and done["evaluation"]["num_images"] == done["data_split"]["validation_images"]
    report = client.get(f"/api/v1/versions/{version['id']}/artifacts/test_evaluation")
    assert report.status_code == 200 and report.json()["num_images"] == 4
    assert report.json()["accuracy"] == done["summary"]["test"]["accuracy"]
    picture = client.get(f"/api/v1/versions/{version['id']}/artifacts/test_confusion_matrix")
    assert picture.status_code == 200 and picture.content[:4] == b"\x89PNG"
