"""Tagging end to end with a real worker process: the shared coco128 tags imported into a tagging view,
trained for two epochs, evaluated (per concept, thresholds, PR curves), exported to ONNX and predicted
over the API; a second version on the same view is judged on the same validation images."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from platform_support import create_project, jpeg, zip_bytes
from test_worker_e2e import Workers, read_sse, wait_for, workers  # noqa: F401 - the fixture

pytestmark = pytest.mark.slow

TINY = {"epochs": 2, "augmented_copies": 0, "image_size": 96, "batch_size": 16, "early_stopping": False}


def import_coco128_tags(client: TestClient, datasets_dir: Path) -> tuple[dict, dict, list[dict]]:  # type: ignore[type-arg]
    root = datasets_dir / "coco128_coco"
    rows = list(csv.DictReader((root / "tags.csv").open(newline="")))
    entries = {"tags.csv": (root / "tags.csv").read_bytes()}
    entries.update({row["image"]: (root / row["image"]).read_bytes() for row in rows})
    project = create_project(client, "coco128")
    view = client.post(f"/api/v1/projects/{project['id']}/views", json={"name": "tags", "kind": "tagging"}).json()
    response = client.post(f"/api/v1/views/{view['id']}/import", files={"file": ("tags.zip", zip_bytes(entries), "application/zip")})
    assert response.status_code == 201, response.text
    assert response.json()["annotated"] == len(rows)
    return project, view, rows


def test_tagging_trains_evaluates_exports_and_predicts(client: TestClient, workers: Workers, datasets_dir: Path) -> None:  # noqa: F811
    _, view, rows = import_coco128_tags(client, datasets_dir)
    counts: dict[str, int] = {}
    for row in rows:
        for tag in filter(None, row["tags"].split(";")):
            counts[tag] = counts.get(tag, 0) + 1
    # The concepts with enough images to be learned; images showing none of them are negatives for all.
    concepts = sorted(c for c, n in counts.items() if n >= 8)
    assert len(concepts) >= 5
    model = client.post(f"/api/v1/views/{view['id']}/models", json={"name": "common things", "concepts": concepts}).json()
    workers.start()
    version = client.post(f"/api/v1/models/{model['id']}/versions", json={"name": "tiny", "settings": TINY})
    assert version.status_code == 201, version.text
    version = version.json()
    assert version["sample_count"] == len(rows)  # one row per image, the negatives included

    events = read_sse(client, f"/api/v1/versions/{version['id']}/events")
    assert events[-1][0] == "end" and events[-1][1]["status"] == "succeeded", workers.logs()
    epochs = [e["data"] for k, e in events if k == "epoch"]
    # The default fine-tunes after the head: two head epochs, then fine-tuning's five.
    assert [(e["stage"], e["epoch"]) for e in epochs] == [("head", 1), ("head", 2), *(("fine_tune", i) for i in range(1, 6))]
    for epoch in epochs:
        assert epoch["monitor"] == "val_map"
        assert 0.0 <= epoch["val_map"] <= 1.0 and 0.0 <= epoch["val_accuracy"] <= 1.0 and 0.0 <= epoch["val_exact_match"] <= 1.0

    done = client.get(f"/api/v1/versions/{version['id']}").json()
    assert done["status"] == "succeeded", done["error"]
    assert done["summary"]["task"] == "tagging" and done["summary"]["monitor"] == "val_map"
    assert done["headline"]["name"] == "val_map" and done["headline"]["value"] == done["best_metrics"]["val_map"]
    assert {a["kind"] for a in done["artifacts"]} >= {"checkpoint", "onnx", "pr_curves"}
    picture = client.get(f"/api/v1/versions/{version['id']}/artifacts/pr_curves")
    assert picture.status_code == 200 and picture.content[:8] == b"\x89PNG\r\n\x1a\n"

    evaluation = done["evaluation"]
    samples = {s["sha256"]: s for s in client.get(f"/api/v1/versions/{version['id']}/samples").json()}
    validation = [s for s in samples.values() if s["split"] == "val"]
    assert evaluation["task"] == "tagging" and evaluation["num_images"] == len(validation) == done["data_split"]["validation_images"]
    assert evaluation["classes"] == concepts and set(evaluation["thresholds"]) == set(concepts)
    assert [r["concept"] for r in evaluation["per_concept"]] == concepts
    for row in evaluation["per_concept"]:  # every chosen concept has validation images: the split saw to it
        assert row["support"] >= 1 and 0.0 <= row["ap"] <= 1.0 and 0.0 < row["threshold"] < 1.0
        assert row["support"] == sum(row["concept"] in s["annotation"] for s in validation)
    assert 0.0 <= evaluation["map"] <= 1.0
    assert set(evaluation["pr_curves"]) == set(concepts) and set(evaluation["errors"]) <= set(concepts)
    for prediction in evaluation["predictions"]:  # named by the content-addressed copy: its sample is a validation image
        sample = samples[re.search(r"[0-9a-f]{64}", prediction["path"]).group(0)]
        assert sample["split"] == "val" and sorted(prediction["true"]) == sorted(sample["annotation"])

    probe = [datasets_dir / "coco128_coco" / rows[i]["image"] for i in (0, 1)]
    predicted = client.post(f"/api/v1/versions/{version['id']}/predict", files=[("files", jpeg(p)) for p in probe])
    assert predicted.status_code == 200, predicted.text
    for result in predicted.json():
        tags = result["predictions"]
        assert [t["label"] for t in sorted(tags, key=lambda t: t["label"])] == concepts  # every concept, not top-k
        assert [t["probability"] for t in tags] == sorted((t["probability"] for t in tags), reverse=True)
        for tag in tags:
            assert tag["threshold"] == pytest.approx(evaluation["thresholds"][tag["label"]])
            assert tag["on"] == (tag["probability"] >= tag["threshold"])

    import numpy as np
    import onnxruntime

    onnx_file = client.get(f"/api/v1/versions/{version['id']}/export/onnx")
    assert onnx_file.status_code == 200
    session = onnxruntime.InferenceSession(onnx_file.content, providers=["CPUExecutionProvider"])
    shape = [d if isinstance(d, int) else 1 for d in session.get_inputs()[0].shape]
    [output] = session.run(None, {session.get_inputs()[0].name: np.zeros(shape, dtype=np.float32)})
    assert output.shape == (1, len(concepts))

    # Another version, other settings: judged on exactly the same validation images (the view's split).
    again = client.post(f"/api/v1/models/{model['id']}/versions", json={"settings": {**TINY, "epochs": 1, "seed": 3}}).json()
    assert again["data_split"]["validation_digest"] == done["data_split"]["validation_digest"]
    wait_for(lambda: client.get(f"/api/v1/versions/{again['id']}").json()["status"] == "succeeded", 600, "the second version", workers)
    second = client.get(f"/api/v1/versions/{again['id']}").json()
    assert second["evaluation"]["num_images"] == evaluation["num_images"]
    assert sorted(p["path"] for p in second["evaluation"]["predictions"]) == sorted(p["path"] for p in evaluation["predictions"])
