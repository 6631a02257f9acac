"""The studio as a first-time user meets it, on real ants/bees photos and versions the real worker trains:
an import names its byte-identical files, image tiles say their side of the split, a filter that leaves
nothing keeps its control (and lives in the address), predict re-predicts on another version and takes
many images at once, and the mistakes gallery opens an image whose label can be changed.

Screenshots go to test-artifacts/screenshots/first-use-*.png for a person to look at.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from browser import chromium_page, screenshot, wait_until
from studio_steps import sign_in, wait_until_succeeded

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TINY = {"epochs": 3, "augmented_copies": 0, "image_size": 96, "batch_size": 16, "early_stopping": False}


def _photos(datasets_dir: Path, part: str, concept: str, count: int) -> list[Path]:
    return sorted((datasets_dir / "ants_bees" / part / concept).glob("*.jpg"))[:count]


def _archive(datasets_dir: Path) -> tuple[bytes, dict[str, str]]:
    """An ImageFolder zip with train/ and val/, and two files that repeat another's bytes under a new name."""
    entries: dict[str, bytes] = {}
    for part, count in (("train", 12), ("val", 6)):
        for concept in ("ants", "bees"):
            for photo in _photos(datasets_dir, part, concept, count):
                entries[f"{part}/{concept}/{photo.name}"] = photo.read_bytes()
    first_ant, first_bee = _photos(datasets_dir, "train", "ants", 1)[0], _photos(datasets_dir, "train", "bees", 1)[0]
    copies = {f"train/ants/copy-of-{first_ant.name}": f"train/ants/{first_ant.name}", f"train/bees/again-{first_bee.name}": f"train/bees/{first_bee.name}"}
    for copy, original in copies.items():
        entries[copy] = entries[original]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue(), copies


@pytest.fixture(scope="module")
def trained(studio, datasets_dir: Path) -> dict:
    """A project whose view holds the imported archive, with two versions that predict differently."""
    api = studio.api()
    project = api.post("/projects", json={"name": "First use"}).json()
    view = api.post(f"/projects/{project['id']}/views", json={"name": "species", "kind": "classification"}).json()
    archive, _ = _archive(datasets_dir)
    imported = api.post(f"/views/{view['id']}/import", files={"file": ("insects.zip", archive, "application/zip")})
    assert imported.status_code == 201, imported.text
    model = api.post(f"/views/{view['id']}/models", json={"name": "ants or bees", "concepts": ["ants", "bees"]}).json()
    first = api.post(f"/models/{model['id']}/versions", json={"name": "v1", "settings": TINY}).json()
    second = api.post(f"/models/{model['id']}/versions", json={"name": "v2", "settings": {**TINY, "learning_rate": 0.00005}}).json()
    return {
        "project": project,
        "view": view,
        "base": f"/#/projects/{project['id']}/views/{view['id']}",
        "first": wait_until_succeeded(api, first["id"], timeout_s=600),
        "second": wait_until_succeeded(api, second["id"], timeout_s=600),
    }


def test_an_import_lists_the_files_that_were_the_same_bytes(studio, datasets_dir: Path, tmp_path: Path):
    archive, copies = _archive(datasets_dir)
    path = tmp_path / "insects.zip"
    path.write_bytes(archive)
    api = studio.api()
    project = api.post("/projects", json={"name": "Import check"}).json()
    already = _photos(datasets_dir, "val", "bees", 1)[0]  # in the project before, under another name
    api.post(f"/projects/{project['id']}/images", files=[("files", ("my-bee.jpg", already.read_bytes(), "image/jpeg"))])
    view = api.post(f"/projects/{project['id']}/views", json={"name": "species", "kind": "classification"}).json()
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.goto(f"/#/projects/{project['id']}/views/{view['id']}/images")
        page.click("button:has-text('Import annotated archive')")
        page.set_input_files("[data-testid=archive-dropzone-input]", str(path))
        outcome = page.wait_for_selector("[data-testid=import-outcome]", timeout=60_000).inner_text()
        assert "38 image(s) read, 35 new (3 the same bytes as an image already there), 38 annotated" in outcome, outcome
        listing = page.locator("[data-testid=duplicate-files]")
        assert not listing.evaluate("d => d.open")  # folded until asked
        listing.locator("summary").click()
        lines = page.locator("[data-testid=duplicate-file]").all_inner_texts()
        expected = [f"{copy} is the same as {original} (earlier in the archive)" for copy, original in copies.items()]
        expected.append(f"val/bees/{already.name} is the same as my-bee.jpg (already in the project)")
        assert sorted(lines) == sorted(expected), lines
        screenshot(page, "first-use-01-import-duplicates")


def test_tiles_show_their_side_and_a_filter_that_leaves_nothing_stays_changeable(studio, trained):
    api = studio.api()
    base = trained["base"]
    images = api.get(f"/projects/{trained['project']['id']}/images", params={"view_id": trained["view"]["id"], "limit": 100}).json()["items"]
    expected = {i["original_name"]: i["side"] for i in images}
    assert set(expected.values()) == {"train", "val"}  # the archive's train/ and val/ folders
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.goto(f"{base}/images")
        wait_until(page, f"document.querySelectorAll('[data-testid=thumb]').length === {len(images)}")
        shown = page.eval_on_selector_all(
            "[data-testid=thumb]", "ts => ts.map(t => [t.querySelector('.caption span').title, t.querySelector('[data-testid=side-badge]').dataset.side])"
        )
        assert dict(shown) == expected
        assert page.locator("[data-testid=side-badge][data-side=val]").first.inner_text() == "validation"
        screenshot(page, "first-use-02-images-sides")

        # Every image is annotated: the "Not annotated" choice finds nothing, and its control stays.
        page.goto(f"{base}/annotate")
        page.wait_for_selector("[data-testid=annotate-stage][data-ready=true]")
        page.select_option("select[aria-label='which images']", "unannotated")
        page.wait_for_selector("h3:has-text('Every image is annotated')")
        assert "status=unannotated" in page.url  # in the address: visible, shareable
        screenshot(page, "first-use-03-nothing-to-annotate")
        page.reload()
        page.wait_for_selector("h3:has-text('Every image is annotated')")
        assert page.locator("select[aria-label='which images']").input_value() == "unannotated"
        page.select_option("select[aria-label='which images']", "")
        page.wait_for_selector("[data-testid=annotate-stage][data-ready=true]")
        page.select_option("select[aria-label='which images']", "unannotated")
        page.click("[data-testid=train-next]")
        page.wait_for_selector("h1:has-text('Train')")
        assert page.url.endswith(f"{base}/train".removeprefix("/"))


def _answer(prediction: dict) -> str:
    top = prediction["predictions"][0]
    return f"{top['label']} {top['probability'] * 100:.1f}%"


def test_predict_many_images_and_another_version_predicts_them_again(studio, trained, datasets_dir: Path):
    api = studio.api()
    base, first, second = trained["base"], trained["first"], trained["second"]
    photos = _photos(datasets_dir, "val", "ants", 2) + _photos(datasets_dir, "val", "bees", 2)
    by_api = {}
    for version in (first, second):
        served = api.post(f"/versions/{version['id']}/predict", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in photos])
        assert served.status_code == 200, served.text
        by_api[version["id"]] = {r["file"]: _answer(r) for r in served.json()}
    assert by_api[first["id"]] != by_api[second["id"]]  # the two versions do not say the same
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.goto(f"{base}/predict?version={first['id']}")
        page.wait_for_selector("#predict-version option", state="attached")
        options = page.locator("#predict-version option").all_inner_texts()
        assert f"ants or bees · v1 · accuracy {first['headline']['value'] * 100:.1f}%" in options, options
        page.set_input_files("[data-testid=predict-dropzone-input]", [str(p) for p in photos])
        page.wait_for_selector(f"[data-testid=predict-results][data-version='{first['id']}'] [data-testid=batch-results]", timeout=60_000)
        answers = dict(zip(page.locator("[data-testid=batch-result]").evaluate_all("cs => cs.map(c => c.dataset.file)"),
                           page.locator("[data-testid=batch-answer]").all_inner_texts(), strict=True))
        assert answers == by_api[first["id"]]
        assert "4 of 4 image(s) predicted by ants or bees · v1" in page.inner_text("[data-testid=batch-summary]")
        assert "predicted by ants or bees · v1" in page.inner_text("[data-testid=prediction-made-by]")
        screenshot(page, "first-use-04-predict-many")

        # Another version: the same images, predicted again by it; nothing of v1 is left under its name.
        page.select_option("#predict-version", str(second["id"]))
        page.wait_for_selector(f"[data-testid=predict-results][data-version='{second['id']}'] [data-testid=batch-results]", timeout=60_000)
        answers = dict(zip(page.locator("[data-testid=batch-result]").evaluate_all("cs => cs.map(c => c.dataset.file)"),
                           page.locator("[data-testid=batch-answer]").all_inner_texts(), strict=True))
        assert answers == by_api[second["id"]]
        assert "predicted by ants or bees · v2" in page.inner_text("[data-testid=batch-summary]")
        assert "v1" not in page.inner_text("[data-testid=predict-results]")
        # One card opened in full: its photo is drawn at a working size, not at its file's few pixels.
        page.locator("[data-testid=batch-result]").nth(2).click()
        made_by = page.wait_for_selector(f"[data-testid=prediction-made-by]:has-text('{photos[2].name}')").inner_text()
        assert "v2" in made_by
        # Its size is set once the photo is decoded (its own proportions are known then).
        wait_until(page, "!!(document.querySelector('[data-testid=prediction] img.photo') || {style: {}}).style.width")
        height = page.eval_on_selector("[data-testid=prediction] img.photo", "i => i.getBoundingClientRect().height")
        assert height >= 320, height
        screenshot(page, "first-use-05-predict-switched")


def test_a_mistake_opens_large_and_its_label_can_be_changed(studio, trained):
    api = studio.api()
    base, version = trained["base"], trained["first"]
    view_id = trained["view"]["id"]
    samples = {s["sha256"]: s for s in api.get(f"/versions/{version['id']}/samples").json()}
    mistakes = version["evaluation"]["misclassified"]
    if not mistakes:
        pytest.fail("the tiny version made no mistake on the validation images: the gallery has nothing to open")
    first = mistakes[0]
    sample = next(s for sha, s in samples.items() if sha in first["path"])
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.goto(f"{base}/versions/{version['id']}/evaluation")
        card = page.locator("[data-testid=gallery-item]").first
        assert card.locator("[data-testid=gallery-file-name]").inner_text() == sample["image_name"]
        card.click()
        viewer = page.wait_for_selector("[data-testid=image-viewer]")
        assert page.inner_text("[data-testid=viewer-file-name]") == sample["image_name"]
        page.wait_for_selector(f"[data-testid=viewer-label-now]:has-text('now: {first['true']}')")
        assert page.get_attribute("[data-testid=viewer-image-page]", "href").endswith(f"/images/{sample['image_id']}")
        page.select_option("[data-testid=viewer-label-choice]", first["predicted"])
        page.click("[data-testid=change-label]")
        notice = page.wait_for_selector("[data-testid=label-changed]").inner_text()
        assert f"Label changed to {first['predicted']}" in notice and "next version" in notice
        screenshot(page, "first-use-06-change-label")
        assert api.get(f"/views/{view_id}/annotations/{sample['image_id']}").json()["concepts"] == [first["predicted"]]
        assert api.get(f"/versions/{version['id']}").json()["evaluation"]["misclassified"] == mistakes  # the evaluation stays
        page.keyboard.press("Escape")
        assert not viewer.is_visible()
        assert f"label now {first['predicted']}" in card.locator("[data-testid=relabelled]").inner_text()
        page.click("[data-testid=gallery-item] >> nth=0")
        page.click("[data-testid=viewer-image-page]")
        page.wait_for_selector(f"[data-testid=image-facts]:has-text('{sample['image_name']}')")
        assert first["predicted"] in page.inner_text("[data-testid=image-facts]")


def test_an_empty_project_opens_on_its_upload_area_and_the_menu_reaches_every_model(studio, trained):
    api = studio.api()
    project = api.post("/projects", json={"name": "Nothing yet"}).json()
    view = api.post(f"/projects/{project['id']}/views", json={"name": "species", "kind": "classification", "concepts": ["ants"]}).json()
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.goto(f"/#/projects/{project['id']}/views/{view['id']}/images")
        page.wait_for_selector("[data-testid=image-dropzone]")  # the area the empty grid points to is on screen
        assert "Drop images or a zip of images in the area above" in page.inner_text(".empty")
        page.click("button:has-text('Upload images')")  # asking for it again never hides it
        assert page.is_visible("[data-testid=image-dropzone]")
        page.click("[data-testid=nav-models]")
        row = page.wait_for_selector("[data-testid=all-models-row]:has-text('ants or bees')").inner_text()
        assert "First use / species" in row and f"{trained['first']['headline']['value'] * 100:.1f}% accuracy (v1)" in row
        page.click("[data-testid=all-models-row]:has-text('ants or bees') a:has-text('library')")
        page.wait_for_selector("[data-testid=model-card]:has-text('ants or bees')")
        screenshot(page, "first-use-07-models-library")
