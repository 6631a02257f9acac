"""A person who has never written code trains a model in the browser, end to end, on real photos:
create a project, upload images (one junk file rejected), annotate with the keyboard, draw a box,
train with live charts, read the confusion matrix, compare two versions, predict an image.

Screenshots of every page go to test-artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from browser import chromium_page, screenshot, wait_until
from studio_steps import create_project_and_view, set_setting, show_setting, sign_in, upload, wait_for_version

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _photos(datasets_dir: Path, split: str, label: str, n: int) -> list[Path]:
    return sorted((datasets_dir / "ants_bees" / split / label).glob("*.jpg"))[:n]


def test_a_person_trains_a_classifier_in_the_browser(studio, datasets_dir: Path, tmp_path: Path):
    ants, bees = _photos(datasets_dir, "train", "ants", 6), _photos(datasets_dir, "train", "bees", 6)
    junk = tmp_path / "holiday-notes.jpg"
    junk.write_text("this is a text file with an image's name")
    api = studio.api()

    with chromium_page(studio.url) as page:
        page.goto("/")
        page.wait_for_selector("#token")
        screenshot(page, "01-login")
        sign_in(page, studio.token)
        page.wait_for_selector("text=No projects yet")
        screenshot(page, "02-projects-empty")

        create_project_and_view(page, "Insects", "species", "classification", "ants, bees")
        page.wait_for_selector("text=No images yet")
        summary = upload(page, [*ants, *bees, junk])
        assert summary.startswith("12 image(s) added") and "1 rejected" in summary, summary
        rejected = page.inner_text("[data-testid=rejected-files]")
        assert "holiday-notes.jpg" in rejected and "image" in rejected.lower(), rejected
        wait_until(page, "document.querySelectorAll('[data-testid=thumb] img').length === 12")
        wait_until(page, "[...document.querySelectorAll('[data-testid=thumb] img')].every(i => i.complete && i.naturalWidth > 0)")
        # The grid loads thumbnails, not the photos themselves.
        widths = page.eval_on_selector_all("[data-testid=thumb] img", "imgs => imgs.map(i => [i.src, i.naturalWidth, i.naturalHeight])")
        assert all("max_side=512" in src and max(w, h) <= 512 for src, w, h in widths), widths
        assert any(max(w, h) == 512 for _, w, h in widths)  # a larger photo came scaled down, not whole
        screenshot(page, "03-images-uploaded")

        # Annotate every image with the number keys: 1 = ants, 2 = bees (the file name tells which).
        page.click(".tabs a:has-text('Annotate')")
        ant_names = {p.name for p in ants}
        for i in range(12):
            position = page.wait_for_selector(f"[data-testid=annotate-position]:has-text('image {i + 1} of 12')")
            name = re.search(r"· (\S+\.jpg)", position.inner_text()).group(1)
            page.wait_for_selector("[data-testid=annotate-stage][data-ready=true] img")
            if i == 0:
                screenshot(page, "04-annotate-classification")
            page.keyboard.press("1" if name in ant_names else "2")
        page.wait_for_selector("text=End of the list")
        project = api.get("/projects").json()[0]
        views = api.get(f"/projects/{project['id']}/views").json()
        listing = api.get(f"/projects/{project['id']}/images", params={"view_id": views[0]["id"], "limit": 50}).json()
        labels = {item["original_name"]: item["annotation"]["concepts"] for item in listing["items"]}
        assert labels == {**{n: ["ants"] for n in ant_names}, **{p.name: ["bees"] for p in bees}}

        # The images page now shows each image's concept, and filters by it.
        page.click(".tabs a:has-text('Images')")
        page.select_option("select[aria-label=concept]", label="bees")
        wait_until(page, "document.querySelectorAll('[data-testid=thumb]').length === 6")
        assert page.inner_text("[data-testid=thumbs]").count("bees") == 6

        # Train: the form comes from the settings schema; suggestions fill values with reasons.
        page.click(".tabs a:has-text('Models')")
        page.wait_for_selector("text=No models yet")
        screenshot(page, "05-models-empty")
        page.click("[data-testid=train-new-version]")
        page.wait_for_selector("[data-testid=train-form]")
        # Every setting that applies to classification has its field, none is listed by hand; the others
        # (the Detection group) are left out of a classifier's form.
        schema = api.get("/settings/schema", params={"task": "classification"}).json()
        for name in schema["schema"]["properties"]:
            assert page.locator(f"[data-field={name}]").count() == (0 if name in schema["not_applicable"] else 1), name
        page.click("[data-testid=suggest-settings]")
        page.wait_for_selector("[data-testid=suggestion-validation_split]")
        assert page.input_value("#setting-validation_split") == "0.4"  # 6 images a concept: the most held out
        assert page.input_value("#setting-batch_size") == "8"

        # A bad value is marked at its field and nothing is sent.
        set_setting(page, "learning_rate", "fast please")
        assert "must be a number" in page.inner_text("[data-field=learning_rate] .field-error")
        page.click("[data-testid=start-training]")
        page.wait_for_selector("text=Fix the 1 marked setting(s) first.")
        screenshot(page, "06-train-form-invalid")
        assert api.get(f"/views/{views[0]['id']}/models").json() == []

        set_setting(page, "learning_rate", "0.003")
        set_setting(page, "epochs", "6")
        show_setting(page, "early_stopping")
        page.uncheck("#setting-early_stopping")
        set_setting(page, "augmented_copies", "0")
        page.click("[data-testid=start-training]")
        page.wait_for_selector("[data-testid=version-title]")
        epochs_seen = wait_for_version(page, live_screenshot="07a-training-live")
        assert page.text_content("[data-testid=training-stats] .badge") == "succeeded"
        # The page followed the run as it went (it opens before the first epoch ends: features come first).
        # 6 head epochs, then fine-tuning's 5 (on by default).
        assert len(epochs_seen) >= 2 and epochs_seen[-1] == "11 / 11", f"the page did not follow the run: {epochs_seen}"
        for chart in ("learning-rate", "batch-loss", "validation-loss", "validation-metric"):
            assert page.locator(f"[data-testid=chart-{chart}] canvas").count() == 1, chart
        assert re.search(r"\(epoch \d+\)", page.inner_text("[data-testid=training-stats]"))  # the best epoch
        screenshot(page, "07-training-finished")

        # Evaluation: the confusion matrix, per-class table, a click on a cell shows its images.
        page.click("a:has-text('Evaluation')")
        page.wait_for_selector("[data-testid=confusion-matrix]")
        assert page.locator("[data-testid=per-class-table] tbody tr").count() == 3  # ants, bees, mean
        # Every cell shows its images, right answers (the diagonal) included, each with its photo.
        version_id = int(page.url.split("/versions/")[1].split("/")[0])
        matrix = api.get(f"/versions/{version_id}").json()["evaluation"]["confusion_matrix"]
        for row, true in enumerate(("ants", "bees")):
            for column, predicted in enumerate(("ants", "bees")):
                page.click(f"[data-testid=cell-{row}-{column}]")
                page.wait_for_selector(f"[data-testid=gallery-title]:has-text('True {true}, predicted {predicted}: {matrix[row][column]} image(s)')")
                cards = page.locator("[data-testid=gallery-item]")
                assert cards.count() == matrix[row][column], (true, predicted)
                for caption in cards.all_inner_texts():
                    assert f"true {true}" in caption and f"predicted {predicted}" in caption and "%" in caption, caption
                wait_until(page, "[...document.querySelectorAll('[data-testid=gallery-item] img')].every(i => i.complete && i.naturalWidth > 0)")
                assert page.locator("[data-testid=gallery-item] img").count() == matrix[row][column]
        page.click("[data-testid=cell-0-0]")
        page.wait_for_selector("[data-testid=gallery-title]:has-text('True ants, predicted ants')")
        screenshot(page, "08-evaluation")

        # A second version with another learning rate, then compare the two.
        page.click("a:has-text('Training curves')")
        page.click("a:has-text('Train another version')")
        page.wait_for_selector("[data-testid=start-from]:has-text('v1')")
        assert page.input_value("#setting-learning_rate") == "0.003"  # v1's settings to start from
        set_setting(page, "learning_rate", "0.0003")
        set_setting(page, "epochs", "3")
        page.click("[data-testid=start-training]")
        page.wait_for_selector("[data-testid=version-title]:has-text('v2')")
        wait_for_version(page)
        page.click(".tabs a:has-text('Models')")
        page.wait_for_selector("[data-testid=version-row] >> nth=1")
        screenshot(page, "09-models-library")
        page.click("a:has-text('Compare the last two finished versions')")
        page.wait_for_selector("[data-testid=compare-settings]")
        differing = page.locator("[data-testid=setting-diff]").all_inner_texts()
        assert any(row.startswith("learning rate") for row in differing), differing
        assert any(row.startswith("epochs") for row in differing), differing
        assert page.locator("[data-testid=compare-charts] canvas").count() == 4
        screenshot(page, "10-compare")

        # The weaker version's mistakes: each shown with its photo, true and predicted labels, probabilities.
        model = api.get(f"/views/{views[0]['id']}/models").json()[0]
        v2 = api.get(f"/models/{model['id']}/versions").json()[-1]
        mistakes = api.get(f"/versions/{v2['id']}").json()["evaluation"]["misclassified"]
        page.goto(f"{studio.url}/#/projects/{project['id']}/views/{views[0]['id']}/versions/{v2['id']}/evaluation")
        page.wait_for_selector("[data-testid=confusion-matrix]")
        assert page.locator("[data-testid=gallery-item]").count() == len(mistakes)
        if mistakes:
            wait_until(page, "[...document.querySelectorAll('[data-testid=gallery-item] img')].every(i => i.complete && i.naturalWidth > 0)")
            first = page.locator("[data-testid=gallery-item]").first.inner_text()
            assert f"true {mistakes[0]['true']}" in first and f"predicted {mistakes[0]['predicted']}" in first
        screenshot(page, "08b-evaluation-mistakes")

        # Predict: drop a photo the model never saw; its labels and probabilities appear.
        page.click(".tabs a:has-text('Predict')")
        page.set_input_files("[data-testid=predict-dropzone] input", str(_photos(datasets_dir, "val", "bees", 1)[0]))
        labels = page.wait_for_selector("[data-testid=prediction-labels]").inner_text()
        assert "ants" in labels and "bees" in labels and "%" in labels, labels
        screenshot(page, "11-predict")
