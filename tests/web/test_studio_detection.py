"""Detection in the studio, on raccoon photos (Pascal VOC) imported into a detection view and a tiny
Faster R-CNN the real worker trains: the Train form of a detection model (detection's defaults, the
Detection group, no head, list fields checked before anything is sent), the training page's mAP and
loss-part charts, the evaluation page (headline, per-concept table, PR curves, confusion matrix with
background, a gallery with the true and predicted boxes drawn over each image, the report's pictures),
predict with boxes drawn, compare across two detection versions, and the view's annotation export.
Beside it, without a browser: GET /settings/schema?task=..., the list fields' parsing, and the
suggestion for a detection view.

Screenshots go to the test's tmp dir (printed), for a person to look at.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from browser import chromium_page, wait_until
from studio_steps import set_setting, show_setting, sign_in, wait_for_version, wait_until_succeeded

from visiontrain.settings import TASK_DEFAULTS, TrainingSettings

WEB = Path(__file__).resolve().parents[2] / "web"
TINY = {"epochs": 2, "augmented_copies": 0, "shorter_side": 192, "longer_side": 320, "early_stopping": False}
IMAGES = 12


def _client(tmp_path: Path):
    from fastapi.testclient import TestClient

    from visiontrain.api.app import create_app
    from visiontrain.config import ServerConfig
    from visiontrain.services import auth
    from visiontrain.services.platform import Platform

    platform = Platform.open(ServerConfig(data_dir=tmp_path / "data"))
    with platform.sessions() as session:
        _, token = auth.create_token(session, name="schema test")
        session.commit()
    return TestClient(create_app(platform=platform), headers={"Authorization": f"Bearer {token}"})


def test_settings_schema_per_task_gives_the_tasks_defaults_and_fields(tmp_path: Path):
    with _client(tmp_path) as client:
        plain = client.get("/api/v1/settings/schema").json()
        # Without a task: as before, every setting and the shared defaults, nothing more.
        assert set(plain) == {"schema", "groups", "defaults"}
        assert plain["defaults"] == TrainingSettings().model_dump(mode="json")
        assert plain["schema"]["properties"]["optimizer"]["default"] == "adam"
        assert "head_layers" in plain["groups"]["Head"] and "anchor_sizes" in plain["groups"]["Detection"]

        detection = client.get("/api/v1/settings/schema", params={"task": "detection"}).json()
        assert detection["task"] == "detection"
        assert detection["task_defaults"] == TASK_DEFAULTS["detection"]
        assert detection["defaults"] == TrainingSettings().with_task_defaults("detection").model_dump(mode="json")
        assert detection["defaults"]["optimizer"] == "sgd" and detection["defaults"]["batch_size"] == 4
        properties = detection["schema"]["properties"]
        for name, value in TASK_DEFAULTS["detection"].items():
            assert properties[name]["default"] == value, name
        shown = [n for names in detection["groups"].values() for n in names]
        assert "Head" not in detection["groups"]
        assert {"image_size", "resize_mode", "head_layers", "dropout"} <= set(detection["not_applicable"])
        assert not set(shown) & set(detection["not_applicable"])
        assert set(shown) | set(detection["not_applicable"]) == set(TrainingSettings.model_fields)
        assert detection["groups"]["Detection"] == plain["groups"]["Detection"]
        assert "gradient_clip_norm" in detection["groups"]["Optimizer"]
        # The plain schema is not changed by a task's (no shared dict was modified).
        assert client.get("/api/v1/settings/schema").json() == plain

        for task in ("classification", "tagging"):
            body = client.get("/api/v1/settings/schema", params={"task": task}).json()
            assert "Detection" not in body["groups"] and "head_layers" in body["groups"]["Head"], task
            assert body["defaults"] == plain["defaults"] and body["task_defaults"] == {}
        tagging = client.get("/api/v1/settings/schema", params={"task": "tagging"}).json()
        assert "balance_concepts" in tagging["groups"]["Head"] and "label_smoothing" in tagging["not_applicable"]
        classification = client.get("/api/v1/settings/schema", params={"task": "classification"}).json()
        assert {"balance_concepts", "label_smoothing"} <= set(classification["groups"]["Head"])

        refused = client.get("/api/v1/settings/schema", params={"task": "segmentation"})
        assert refused.status_code == 422 and "detection" in refused.text


def _node(tmp_path: Path, body: str) -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is needed for the studio (build and tests): install nodejs")
    script = tmp_path / "check.mjs"
    script.write_text(body)
    result = subprocess.run([node, str(script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_list_settings_are_typed_as_numbers_apart_by_commas(tmp_path: Path):
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(TrainingSettings.model_json_schema()))
    module = (WEB / "src" / "components" / "settings-schema.js").as_uri()
    out = _node(tmp_path, f"""
import {{ readFileSync }} from "node:fs";
import {{ describeField, isDefaultText, parseField, toText }} from "{module}";
const schema = JSON.parse(readFileSync({json.dumps(str(schema))}, "utf8"));
const sizes = describeField(schema, "anchor_sizes");
const ratios = describeField(schema, "anchor_ratios");
console.log(JSON.stringify({{
  kinds: [sizes.kind, sizes.item.kind, ratios.item.kind],
  text: toText(sizes, sizes.default),
  spaced: parseField(sizes, " 16, 32 ;64  128 ").value,
  ratios: parseField(ratios, "0.5,1,2.5").value,
  word: parseField(sizes, "32, abc").error,
  fraction: parseField(sizes, "32, 64.5").error,
  empty: parseField(sizes, "").error,
  many: parseField(sizes, "1 2 3 4 5 6 7").error,
  sameAsDefault: [isDefaultText(sizes, "32 64 128 256"), isDefaultText(sizes, "32, 64"), isDefaultText(ratios, "0.50, 1.0, 2")],
}}));
""")
    assert out["kinds"] == ["list", "integer", "number"]
    assert out["text"] == "32, 64, 128, 256"
    assert out["spaced"] == [16, 32, 64, 128]
    assert out["ratios"] == [0.5, 1, 2.5]
    assert out["word"] == '"abc" (value 2) must be a number'
    assert out["fraction"] == '"64.5" (value 2) must be a whole number'
    assert out["empty"] == "a value is needed"
    assert out["many"] == "give at most 6 whole numbers (got 7)"
    assert out["sameAsDefault"] == [True, False, True]


def test_report_images_become_boxes_of_four_kinds_and_the_gallery_filters(tmp_path: Path):
    module = (WEB / "src" / "components" / "detection.js").as_uri()
    # Three images as build_detection_report writes them: one right, one with a miss and a false
    # positive, one annotated without concept with a false positive; "errors" lists the worst first.
    report = {
        "task": "detection", "classes": ["cat", "dog"], "score_threshold": 0.5,
        "per_class": [
            {"concept": "cat", "true_positives": 1, "false_positives": 1, "false_negatives": 1},
            {"concept": "dog", "true_positives": 0, "false_positives": 1, "false_negatives": 0},
        ],
        "images": [
            {"path": "/a/right.jpg", "true": [{"concept": "cat", "box": [1, 2, 30, 40], "matched": True}],
             "predicted": [{"concept": "cat", "score": 0.9, "box": [2, 2, 31, 41], "correct": True}], "false_positives": 0, "false_negatives": 0},
            {"path": "/a/mixed.jpg", "true": [{"concept": "cat", "box": [0, 0, 10, 10], "matched": False}],
             "predicted": [{"concept": "cat", "score": 0.61, "box": [50, 50, 80, 80], "correct": False}], "false_positives": 1, "false_negatives": 1},
            {"path": "/a/empty.jpg", "true": [], "predicted": [{"concept": "dog", "score": 0.7, "box": [5, 5, 9, 9], "correct": False}],
             "false_positives": 1, "false_negatives": 0},
        ],
        "errors": ["/a/mixed.jpg", "/a/empty.jpg"],
    }
    out = _node(tmp_path, f"""
import {{ imageBoxes, galleryImages, inCell, predictionBoxes, totals, verdict }} from "{module}";
const report = {json.dumps(report)};
const paths = (list) => list.map((i) => i.path.split("/").pop());
console.log(JSON.stringify({{
  kinds: report.images.map((i) => imageBoxes(i).map((b) => b.kind)),
  labels: imageBoxes(report.images[1]).map((b) => b.label),
  onlyTruth: imageBoxes(report.images[1], {{ predicted: false }}).map((b) => b.kind),
  order: paths(galleryImages(report)),
  errors: paths(galleryImages(report, {{ onlyErrors: true }})),
  dogs: paths(galleryImages(report, {{ concept: "dog" }})),
  missedCats: paths(galleryImages(report, {{ cell: {{ true: "cat", predicted: "background" }} }})),
  noObject: paths(galleryImages(report, {{ cell: {{ true: "background", predicted: "dog" }} }})),
  foundCats: paths(galleryImages(report, {{ cell: {{ true: "cat", predicted: "cat" }} }})),
  corner: report.images.some((i) => inCell(i, {{ true: "background", predicted: "background" }})),
  verdicts: report.images.map(verdict),
  totals: totals(report),
  predicted: predictionBoxes([{{ label: "cat", score: 0.456, box: {{ x_min: 1, y_min: 2, x_max: 3, y_max: 4 }} }}]),
}}));
""")
    assert out["kinds"] == [["found", "right"], ["missed", "false_positive"], ["false_positive"]]
    assert out["labels"] == ["cat: missed", "cat 61% ✗"]
    assert out["onlyTruth"] == ["missed"]
    assert out["order"] == ["mixed.jpg", "empty.jpg", "right.jpg"]
    assert out["errors"] == ["mixed.jpg", "empty.jpg"]
    assert out["dogs"] == ["empty.jpg"]
    assert out["missedCats"] == ["mixed.jpg"] and out["noObject"] == ["empty.jpg"] and out["foundCats"] == ["right.jpg"]
    assert out["corner"] is False
    assert out["verdicts"] == ["1 object · all found", "1 object · 0 found · 1 missed · 1 false positive", "no object · 1 false positive"]
    assert out["totals"] == {"tp": 1, "fp": 2, "fn": 1, "precision": 1 / 3, "recall": 0.5}
    assert out["predicted"] == [{"kind": "predicted", "box": [1, 2, 3, 4], "concept": "cat", "score": 0.456, "label": "cat 46%"}]


def test_suggestion_for_a_detector_takes_one_concept_and_keeps_its_batches():
    from visiontrain.assistant import estimated_counts, suggest_settings

    s = suggest_settings(estimated_counts("detection", {"raccoon": 40}))
    assert "batch_size" not in s.settings and "epochs" not in s.settings
    assert s.settings["fine_tune"] is False and s.settings["augmented_copies"] == 2
    TrainingSettings(**(TrainingSettings().with_task_defaults("detection").model_dump() | s.settings))
    with pytest.raises(ValueError, match="at least 2 concept"):
        suggest_settings(estimated_counts("classification", {"raccoon": 40}))  # a classifier still needs two
    with pytest.raises(ValueError, match="images with boxes"):
        suggest_settings(estimated_counts("detection", {"raccoon": 0}))


def _voc_zip(datasets_dir: Path, count: int) -> tuple[bytes, list[str]]:
    raccoon = datasets_dir / "raccoon"
    names = sorted(p.stem for p in (raccoon / "annotations").glob("*.xml"))[:count]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for n in names:
            archive.write(raccoon / "images" / f"{n}.jpg", f"images/{n}.jpg")
            archive.write(raccoon / "annotations" / f"{n}.xml", f"annotations/{n}.xml")
    return buffer.getvalue(), names


def _shots(tmp_path: Path):
    folder = Path(os.environ.get("VISIONTRAIN_DETECTION_SCREENSHOTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")

    def shot(page, name: str) -> Path:
        path = folder / f"detection-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shot


@pytest.mark.browser
@pytest.mark.slow
def test_detection_pages_on_a_trained_version(studio, datasets_dir: Path, tmp_path: Path):
    shot = _shots(tmp_path)
    api = studio.api()
    archive, names = _voc_zip(datasets_dir, IMAGES)
    project = api.post("/projects", json={"name": "Raccoons"}).json()
    view = api.post(f"/projects/{project['id']}/views", json={"name": "boxes", "kind": "detection"}).json()
    imported = api.post(f"/views/{view['id']}/import", data={"format": "voc"}, files={"file": ("raccoon.zip", archive, "application/zip")})
    assert imported.status_code == 201, imported.text
    # An ant photo annotated "without concept": no object, so any box predicted on it is a false positive.
    ant = sorted((datasets_dir / "ants_bees" / "val" / "ants").glob("*.jpg"))[0]
    [negative] = api.post(f"/projects/{project['id']}/images", files=[("files", (ant.name, ant.read_bytes(), "image/jpeg"))]).json()["images"]
    assert api.put(f"/views/{view['id']}/annotations/{negative['id']}", json={"boxes": []}).status_code == 200
    created = api.post(f"/views/{view['id']}/models", json={"name": "raccoon finder"})
    assert created.status_code == 201, created.text
    model = created.json()
    base = f"/#/projects/{project['id']}/views/{view['id']}"

    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)

        # The Train form of a detection model: detection's defaults, its group open, no head, no image_size.
        page.goto(f"{base}/train")
        page.wait_for_selector("[data-testid=train-form]")
        assert page.locator("details.group:has(summary:has-text('Detection'))").evaluate("d => d.open")
        assert page.locator("details.group summary:has-text('Head')").count() == 0
        for absent in ("head_layers", "dropout", "image_size", "resize_mode", "balance_concepts"):
            assert page.locator(f"#setting-{absent}").count() == 0, absent
        expected = {"optimizer": "sgd", "learning_rate": "0.01", "batch_size": "4", "epochs": "16", "gradient_clip_norm": "10",
                    "anchor_sizes": "32, 64, 128, 256", "anchor_ratios": "0.5, 1, 2", "shorter_side": "384", "score_threshold": ""}
        for name, value in expected.items():
            assert page.input_value(f"#setting-{name}") == value, name
        assert "do not apply to detection" in page.inner_text("[data-testid=task-settings-note]")
        show_setting(page, "anchor_sizes")  # under Advanced, as every setting outside the basic five
        assert "Default: 32, 64, 128, 256." in page.inner_text("[data-field=anchor_sizes] .help")
        # A list field is checked before anything is sent.
        set_setting(page, "anchor_sizes", "32, big, 128")
        assert '"big" (value 2) must be a number' in page.inner_text("[data-field=anchor_sizes] .field-error")
        page.click("[data-testid=start-training]")
        page.wait_for_selector("text=Fix the 1 marked setting(s) first.")
        assert api.get(f"/models/{model['id']}/versions").json() == []
        shot(page, "01-train-form-list-error")

        # A tiny run through the form: what it sets is kept, the rest takes detection's defaults.
        set_setting(page, "anchor_sizes", "32 64 128 256")
        page.wait_for_selector("text=Fix the 1 marked setting(s) first.", state="detached")
        assert page.locator("[data-field=anchor_sizes].changed").count() == 0  # the default, typed otherwise
        for name in ("epochs", "augmented_copies", "shorter_side", "longer_side"):
            set_setting(page, name, str(TINY[name]))
        page.uncheck("#setting-early_stopping")
        shot(page, "02-train-form-detection")
        page.click("[data-testid=start-training]")
        page.wait_for_selector("[data-testid=training-stats]")
        [first] = api.get(f"/models/{model['id']}/versions").json()
        # A second version, to compare: the same data, another overlap for merging boxes.
        second = api.post(f"/models/{model['id']}/versions", json={"name": "v2", "settings": {**TINY, "nms_iou": 0.6}})
        assert second.status_code == 201, second.text
        wait_for_version(page, timeout_s=900)
        first = wait_until_succeeded(api, first["id"], timeout_s=900)
        settings = first["settings"]
        assert settings["optimizer"] == "sgd" and settings["learning_rate"] == 0.01 and settings["batch_size"] == 4
        assert settings["anchor_sizes"] == [32, 64, 128, 256] and settings["shorter_side"] == 192 and settings["early_stopping"] is False
        assert first["headline"]["name"] == "val_map50"

        # Training page: mAP@0.5 and mAP@[.5:.95] per epoch, and the loss's parts, in plain words.
        page.wait_for_selector("[data-testid=chart-validation-metric] canvas")
        metric_chart = page.inner_text("[data-testid=chart-validation-metric]")
        assert "mAP@0.5" in metric_chart and "mAP@[.5:.95]" in metric_chart
        for chart in ("chart-train-loss-parts", "chart-val-loss-parts", "chart-validation-loss"):
            page.wait_for_selector(f"[data-testid={chart}] canvas")
        parts = page.inner_text("[data-testid=chart-val-loss-parts]")
        assert "which concept each box is" in parts and "where each box lies" in parts and "object or background" in parts
        assert "mAP@0.5" in page.inner_text("[data-testid=training-stats]")
        shot(page, "03-training")

        # Evaluation: headline, per-concept table, PR curves, matrix with background, the gallery with boxes.
        evaluation = first["evaluation"]
        page.goto(f"{base}/versions/{first['id']}/evaluation")
        page.wait_for_selector("[data-testid=per-class-table]")
        assert page.inner_text("[data-testid=map50]") == f"{evaluation['map50'] * 100:.1f}%"
        assert page.inner_text("[data-testid=map]") == f"{evaluation['map'] * 100:.1f}%"
        rows = page.eval_on_selector_all("[data-testid=class-row]", "rows => rows.map(r => r.dataset.concept)")
        assert rows == ["raccoon"]
        row = page.inner_text("[data-testid=class-row]")
        counts = evaluation["per_class"][0]
        assert row.split("\t")[-4:] == [str(counts[k]) for k in ("support", "true_positives", "false_positives", "false_negatives")], row
        page.wait_for_selector("[data-testid=pr-curves] canvas")
        matrix = page.inner_text("[data-testid=confusion-matrix]")
        assert "background" in matrix
        assert "objects the detector did not find" in page.inner_text("[data-testid=background-explained]")
        images = evaluation["images"]
        assert page.locator("[data-testid=detection-item]").count() == len(images)
        boxes = sum(len(i["true"]) + len(i["predicted"]) for i in images)
        assert boxes > 0
        # Every box is drawn once the images' sizes are known, over images that loaded.
        wait_until(page, f"document.querySelectorAll('[data-testid=detection-gallery] rect[data-testid=box-rect]').length === {boxes}")
        wait_until(page, "[...document.querySelectorAll('[data-testid=detection-item] img')].every(i => i.complete && i.naturalWidth > 0)")
        drawn = page.eval_on_selector_all("[data-testid=detection-gallery] rect[data-testid=box-rect]", "rs => rs.map(r => r.dataset.kind)")
        assert drawn.count("found") + drawn.count("missed") == sum(len(i["true"]) for i in images)
        assert drawn.count("missed") == sum(i["false_negatives"] for i in images)
        assert drawn.count("false_positive") == sum(i["false_positives"] for i in images)
        # The rectangles lie on the picture: an SVG as large as its image.
        overlay, picture = page.eval_on_selector(
            "[data-testid=detection-item] .boxed-image",
            "b => [b.querySelector('svg').getBoundingClientRect().toJSON(), b.querySelector('img').getBoundingClientRect().toJSON()]",
        )
        assert abs(overlay["width"] - picture["width"]) < 1 and abs(overlay["height"] - picture["height"]) < 1
        shot(page, "04-evaluation")
        page.check("[data-testid=only-errors]")
        with_errors = [i for i in images if i["false_positives"] + i["false_negatives"]]
        assert page.locator("[data-testid=detection-item]").count() == len(with_errors)
        assert all(int(e) > 0 for e in page.eval_on_selector_all("[data-testid=detection-item]", "cs => cs.map(c => c.dataset.errors)"))
        page.uncheck("[data-testid=only-errors]")
        # One image large, every box labelled.
        page.click("[data-testid=detection-item] >> nth=0")
        page.wait_for_selector("[data-testid=detection-viewer] rect[data-testid=box-rect]")
        wait_until(page, "[...document.querySelectorAll('[data-testid=detection-viewer] img')].every(i => i.complete && i.naturalWidth > 0)")
        shot(page, "05-evaluation-viewer")
        page.click("[data-testid=viewer-close]")
        # The report's three pictures download as PNGs.
        for kind in ("pr_curves", "confusion_matrix", "detections"):
            with page.expect_download() as download:
                page.click(f"[data-testid=artifact-{kind}]")
            assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", kind

        # Predict: the boxes drawn on the uploaded image, with concept and score, and their table.
        probe = datasets_dir / "raccoon" / "images" / f"{names[0]}.jpg"
        page.goto(f"{base}/predict?version={first['id']}")
        page.set_input_files("[data-testid=predict-dropzone-input]", str(probe))
        page.wait_for_selector("[data-testid=prediction]")
        served = api.post(f"/versions/{first['id']}/predict", files=[("files", (probe.name, probe.read_bytes(), "image/jpeg"))])
        assert served.status_code == 200, served.text
        found = served.json()[0]["predictions"]
        assert "raccoon finder · v1" in page.inner_text("[data-testid=prediction-made-by]")
        wait_until(page, f"document.querySelectorAll('[data-testid=predicted-image] rect[data-testid=box-rect]').length === {len(found)}")
        assert page.locator("[data-testid=prediction-box-row]").count() == len(found)
        if found:
            labels = page.eval_on_selector_all("[data-testid=predicted-image] text", "ts => ts.map(t => t.textContent)")
            assert labels[0] == f"raccoon {round(found[0]['score'] * 100)}%"
        shot(page, "06-predict")

        # Compare: two detection versions, mAP@0.5 first, only the settings that apply to detection.
        second = wait_until_succeeded(api, second.json()["id"], timeout_s=900)
        page.goto(f"{base}/compare?versions={first['id']},{second['id']}")
        page.wait_for_selector("[data-testid=compare-metrics]")
        metrics = page.inner_text("[data-testid=compare-metrics]")
        assert f"{first['headline']['value'] * 100:.1f}% mAP@0.5" in metrics
        assert "best validation mAP@0.5" in metrics and "best validation mAP@[.5:.95]" in metrics
        page.check("[data-testid=show-all-settings]")  # only the differing ones until asked
        settings_table = page.inner_text("[data-testid=compare-settings]")
        assert "nms iou" in settings_table and "head layers" not in settings_table and "anchor sizes" in settings_table
        assert [r.split("\t")[0] for r in page.locator("[data-testid=setting-diff]").all_inner_texts()] == ["nms iou"]
        shot(page, "07-compare")

        # Export annotations from the view's images page: the formats the view can use, a zip download.
        page.goto(f"{base}/images")
        page.click("[data-testid=export-open]")
        page.wait_for_selector("[data-testid=annotation-export]")
        offered = page.eval_on_selector_all("#export-format option", "os => os.map(o => o.value)")
        assert offered == [f["name"] for f in api.get(f"/views/{view['id']}/export/formats").json()]
        page.select_option("#export-format", "coco")
        assert "instances_" in page.inner_text("[data-testid=export-layout]")
        shot(page, "08-export")
        with page.expect_download() as download:
            page.click("[data-testid=export-download]")
        assert download.value.suggested_filename.endswith(".zip")
        with zipfile.ZipFile(download.value.path()) as exported:
            listed = exported.namelist()
        assert any(n.startswith("annotations/instances_") for n in listed)
        assert sum(n.startswith("images/") and n.endswith(".jpg") for n in listed) == IMAGES + 1  # the negative too
