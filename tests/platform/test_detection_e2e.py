"""Detection end to end with a real worker process: shared raccoon photos (Pascal VOC) imported into a
detection view with an image marked "without concept", a Faster R-CNN trained for two epochs, its
evaluation (mAP, per-class AP, confusion matrix, pictures), predictions with boxes over the API, and
the ONNX export."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from platform_support import create_project, jpeg, upload, zip_bytes
from test_worker_e2e import Workers, read_sse, workers  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

TINY = {"epochs": 2, "augmented_copies": 0, "shorter_side": 192, "longer_side": 320, "early_stopping": False}


def raccoon_view(client: TestClient, datasets_dir: Path, count: int) -> tuple[dict, dict, list[str]]:  # type: ignore[type-arg]
    raccoon = datasets_dir / "raccoon"
    names = sorted(p.stem for p in (raccoon / "annotations").glob("*.xml"))[:count]
    entries = {f"images/{n}.jpg": (raccoon / "images" / f"{n}.jpg").read_bytes() for n in names}
    entries.update({f"annotations/{n}.xml": (raccoon / "annotations" / f"{n}.xml").read_bytes() for n in names})
    project = create_project(client, "raccoons")
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "boxes", "kind": "detection"}).json()
    response = client.post(f"/api/v1/views/{view['id']}/import", data={"format": "voc"},
                           files={"file": ("raccoon.zip", zip_bytes(entries), "application/zip")})
    assert response.status_code == 201, response.text
    assert response.json()["annotated"] == count
    return project, view, names


def test_detection_trains_evaluates_predicts_and_exports(client: TestClient, workers: Workers, datasets_dir: Path) -> None:  # noqa: F811
    project, view, names = raccoon_view(client, datasets_dir, 24)
    # An ant photo, marked "without concept": a negative, where every predicted box is a false positive.
    [ant] = upload(client, project["id"], [sorted((datasets_dir / "ants_bees" / "val" / "ants").glob("*.jpg"))[0]])
    marked = client.put(f"/api/v1/views/{view['id']}/annotations/{ant['id']}", json={"boxes": []})
    assert marked.status_code == 200, marked.text
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "raccoon finder"})
    assert model.status_code == 201, model.text
    model = model.json()
    assert model["concepts"] == ["raccoon"]
    workers.start()
    created = client.post(f"/api/v1/models/{model['id']}/versions", json={"name": "tiny", "settings": TINY})
    assert created.status_code == 201, created.text
    version = created.json()
    annotated = client.get(f"/api/v1/views/{view['id']}").json()["annotated"]
    assert version["sample_count"] == annotated  # every annotated image, the negative included
    # Detection's own defaults where the request left a setting out; what it set is kept.
    assert version["settings"]["optimizer"] == "sgd" and version["settings"]["learning_rate"] == 0.01
    assert version["settings"]["shorter_side"] == 192 and version["settings"]["epochs"] == 2

    events = read_sse(client, f"/api/v1/versions/{version['id']}/events")
    assert events[-1][0] == "end" and events[-1][1]["status"] == "succeeded", workers.logs()
    epochs = [e["data"] for k, e in events if k == "epoch"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    for epoch in epochs:
        assert epoch["monitor"] == "val_map50"
        assert 0.0 <= epoch["val_map"] <= epoch["val_map50"] <= 1.0
        assert epoch["val_loss"] > 0 and epoch["train_loss_classifier"] > 0 and epoch["val_loss_objectness"] > 0

    done = client.get(f"/api/v1/versions/{version['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert done["summary"]["task"] == "detection" and done["headline"]["name"] == "val_map50"
    assert {a["kind"] for a in done["artifacts"]} >= {"checkpoint", "onnx", "pr_curves", "confusion_matrix", "detections"}
    picture = client.get(f"/api/v1/versions/{version['id']}/artifacts/detections")
    assert picture.status_code == 200 and picture.content[:8] == b"\x89PNG\r\n\x1a\n"

    samples = client.get(f"/api/v1/versions/{version['id']}/samples").json()
    validation = [s for s in samples if s["split"] == "val"]
    negative = next(s for s in samples if s["image_id"] == ant["id"])
    assert negative["annotation"] == []
    evaluation = done["evaluation"]
    assert evaluation["task"] == "detection" and evaluation["num_images"] == len(validation)
    assert evaluation["num_boxes"] == sum(len(s["annotation"]) for s in validation)
    assert [row["concept"] for row in evaluation["per_class"]] == ["raccoon"]
    assert evaluation["confusion_matrix"]["labels"] == ["raccoon", "background"]
    assert 0.0 <= evaluation["map"] <= evaluation["map50"] <= 1.0

    probe = datasets_dir / "raccoon" / "images" / f"{names[0]}.jpg"
    predicted = client.post(f"/api/v1/versions/{version['id']}/predict", files=[("files", jpeg(probe))])
    assert predicted.status_code == 200, predicted.text
    [result] = predicted.json()
    from PIL import Image

    with Image.open(probe) as image:
        assert (result["width"], result["height"]) == image.size
    for box in result["predictions"]:
        assert box["label"] == "raccoon" and box["score"] >= done["summary"]["task_state"]["score_threshold"]
        corners = box["box"]
        assert 0 <= corners["x_min"] < corners["x_max"] and 0 <= corners["y_min"] < corners["y_max"]

    onnx_file = client.get(f"/api/v1/versions/{version['id']}/export/onnx")
    assert onnx_file.status_code == 200 and len(onnx_file.content) > 1_000_000
