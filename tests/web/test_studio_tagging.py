"""Tagging in the studio, on a version the real worker trains on the shared coco128 tags: the training
page charts validation mAP, the evaluation page shows the per-concept table, PR curve and false
positive / negative galleries, predict shows each concept on or off, compare lines up two tagging
versions judged on the same validation images, and the training page re-splits the view.

Screenshots go to test-artifacts/screenshots/ (tagging-*.png) for a person to look at.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import pytest

from browser import chromium_page, screenshot, wait_until
from studio_steps import sign_in, wait_until_succeeded

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TINY = {"epochs": 3, "augmented_copies": 0, "image_size": 96, "batch_size": 16, "early_stopping": False}


def _tags_zip(root: Path) -> tuple[bytes, list[dict]]:
    rows = list(csv.DictReader((root / "tags.csv").open(newline="")))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.write(root / "tags.csv", "tags.csv")
        for row in rows:
            archive.write(root / row["image"], row["image"])
    return buffer.getvalue(), rows


def test_tagging_pages_on_a_trained_version(studio, datasets_dir: Path):
    api = studio.api()
    root = datasets_dir / "coco128_coco"
    archive, rows = _tags_zip(root)
    project = api.post("/projects", json={"name": "COCO things"}).json()
    view = api.post(f"/projects/{project['id']}/views", json={"name": "things", "kind": "tagging"}).json()
    imported = api.post(f"/views/{view['id']}/import", files={"file": ("tags.zip", archive, "application/zip")})
    assert imported.status_code == 201, imported.text
    counts: dict[str, int] = {}
    for row in rows:
        for tag in filter(None, row["tags"].split(";")):
            counts[tag] = counts.get(tag, 0) + 1
    concepts = sorted(c for c, n in counts.items() if n >= 8)
    model = api.post(f"/views/{view['id']}/models", json={"name": "common things", "concepts": concepts}).json()
    first = api.post(f"/models/{model['id']}/versions", json={"name": "v1", "settings": TINY}).json()
    second = api.post(f"/models/{model['id']}/versions", json={"name": "v2", "settings": {**TINY, "learning_rate": 0.01}}).json()
    first = wait_until_succeeded(api, first["id"], timeout_s=600)
    wait_until_succeeded(api, second["id"], timeout_s=600)
    evaluation = first["evaluation"]
    base = f"/#/projects/{project['id']}/views/{view['id']}"

    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)

        # Training page: the metric chart is the one the run chose its checkpoint by.
        page.goto(f"{base}/versions/{first['id']}")
        page.wait_for_selector("[data-testid=chart-validation-metric] canvas")
        assert page.inner_text("[data-testid=chart-validation-metric] figcaption").startswith("Validation mAP")
        assert "validation mAP" in page.inner_text("[data-testid=training-stats]")
        screenshot(page, "tagging-01-training")

        # Evaluation: per-concept table with thresholds, PR curve, false positives and negatives.
        page.goto(f"{base}/versions/{first['id']}/evaluation")
        page.wait_for_selector("[data-testid=per-concept-table]")
        assert page.inner_text("[data-testid=map]") == f"{evaluation['map'] * 100:.1f}%"
        shown = page.eval_on_selector_all("[data-testid=concept-row]", "rows => rows.map(r => r.dataset.concept)")
        assert sorted(shown) == concepts
        thresholds = page.eval_on_selector_all("[data-testid=concept-threshold]", "cells => cells.map(c => c.textContent)")
        assert len(thresholds) == len(concepts) and all(float(t) > 0 for t in thresholds), thresholds
        page.wait_for_selector("[data-testid=pr-curve] canvas")
        first_concept = shown[0]
        assert page.inner_text("[data-testid=pr-title]").endswith(first_concept)
        errors = evaluation["errors"].get(first_concept, {})
        page.wait_for_selector("[data-testid=false-positive-title]")
        assert page.locator("[data-testid=false-positive-item]").count() == len(errors.get("false_positives", []))
        assert page.locator("[data-testid=false-negative-item]").count() == len(errors.get("false_negatives", []))
        wait_until(
            page,
            "[...document.querySelectorAll('[data-testid$=-item] img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        screenshot(page, "tagging-02-evaluation")
        # Another concept: its own curve and its own mistakes.
        other = shown[-1]
        page.click(f"[data-testid=concept-row][data-concept='{other}']")
        page.wait_for_selector(f"[data-testid=pr-title]:has-text('{other}')")
        other_errors = evaluation["errors"].get(other, {})
        assert page.locator("[data-testid=false-negative-item]").count() == len(other_errors.get("false_negatives", []))
        screenshot(page, "tagging-03-evaluation-other-concept")

        # Predict: every concept, on or off at its threshold.
        page.goto(f"{base}/predict?version={first['id']}")
        page.set_input_files("[data-testid=predict-dropzone-input]", str(root / rows[0]["image"]))
        page.wait_for_selector("[data-testid=tag-row]")
        states = page.eval_on_selector_all("[data-testid=tag-row]", "rows => rows.map(r => [r.dataset.concept, r.dataset.on])")
        assert sorted(c for c, _ in states) == concepts
        served = api.post(f"/versions/{first['id']}/predict", files=[("files", (rows[0]["image"], (root / rows[0]["image"]).read_bytes(), "image/jpeg"))]).json()
        assert dict(states) == {t["label"]: "on" if t["on"] else "off" for t in served[0]["predictions"]}
        screenshot(page, "tagging-04-predict")

        # Compare: both tagging versions, headline mAP, the same validation images.
        page.goto(f"{base}/compare?versions={first['id']},{second['id']}")
        page.wait_for_selector("[data-testid=compare-metrics]")
        metrics = page.inner_text("[data-testid=compare-metrics]")
        assert "mAP" in metrics and "best validation exact match" in metrics
        assert page.locator("[data-testid=different-validation]").count() == 0
        assert "(the same images)" in page.inner_text("[data-testid=compare-validation] >> nth=0")
        screenshot(page, "tagging-05-compare")

        # The training page shows the view's split; re-splitting moves images and says so.
        page.goto(f"{base}/train?model={model['id']}")
        page.wait_for_selector("[data-testid=split-summary]")
        before = api.get(f"/views/{view['id']}/split").json()
        assert f"{before['val']} of {before['images']}" in page.inner_text("[data-testid=split-summary]")
        page.click("[data-testid=resplit-open]")
        page.fill("#resplit-fraction", "30")
        page.fill("#resplit-seed", "5")
        screenshot(page, "tagging-06-resplit-form")
        page.click("[data-testid=resplit]")
        page.wait_for_selector("[data-testid=resplit-done]")
        after = api.get(f"/views/{view['id']}/split").json()
        assert after["generation"] == before["generation"] + 1 and after["validation_split"] == 0.3 and after["seed"] == 5
        assert after["val"] > before["val"]
        page.wait_for_selector(f"[data-testid=split-summary]:has-text('{after['val']} of {after['images']}')")
        screenshot(page, "tagging-07-resplit-done")
