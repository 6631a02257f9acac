"""A person who has never written code trains a model in the browser, end to end, on real photos:
create a project, upload images (one junk file rejected), annotate with the keyboard, draw a box,
train with live charts, read the confusion matrix, compare two versions, predict an image.

Screenshots of every page go to test-artifacts/screenshots/ for a person to look at.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from browser import chromium_page, screenshot

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRAINING_TIMEOUT_S = 300


def _photos(datasets_dir: Path, split: str, label: str, n: int) -> list[Path]:
    return sorted((datasets_dir / "ants_bees" / split / label).glob("*.jpg"))[:n]


def sign_in(page, token: str) -> None:
    page.goto("/")
    page.fill("#token", token)
    page.click("button:has-text('Sign in')")
    page.wait_for_selector("h1:has-text('Projects')")


def create_project_and_view(page, project: str, view: str, kind: str, concepts: str) -> None:
    page.goto("/#/")
    page.fill("#project-name", project)
    page.click("button:has-text('Create project')")
    page.wait_for_selector("h2:has-text('Add a view')")
    page.fill("#view-name", view)
    page.select_option("#view-kind", kind)
    page.fill("#view-concepts", concepts)
    page.click("button:has-text('Create view')")
    page.wait_for_selector("h1:has-text('Images')")


def upload(page, files: list[Path]) -> str:
    page.click("button:has-text('Upload images')")
    page.set_input_files("[data-testid=image-dropzone-input]", [str(f) for f in files])
    return page.wait_for_selector("[data-testid=upload-summary]", timeout=60_000).inner_text()


def wait_for_version(page, timeout_s: float = TRAINING_TIMEOUT_S) -> list[str]:
    """Waits on the training page until the run finishes; returns each distinct 'epochs done' seen."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        epochs = page.inner_text("[data-testid=epochs-done]")
        if not seen or seen[-1] != epochs:
            seen.append(epochs)
        status = page.inner_text("[data-testid=training-stats] .badge")
        if status in ("succeeded", "failed", "cancelled"):
            return seen
        page.wait_for_timeout(150)
    pytest.fail(f"training did not finish in {timeout_s}s (epochs seen: {seen})")


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
        page.wait_for_function("document.querySelectorAll('[data-testid=thumb] img').length === 12")
        page.wait_for_function("[...document.querySelectorAll('[data-testid=thumb] img')].every(i => i.complete && i.naturalWidth > 0)")
        screenshot(page, "03-images-uploaded")

        # Annotate every image with the number keys: 1 = ants, 2 = bees (the file name tells which).
        page.click(".tabs a:has-text('Annotate')")
        ant_names = {p.name for p in ants}
        for i in range(12):
            position = page.wait_for_selector(f"[data-testid=annotate-position]:has-text('image {i + 1} of 12')")
            name = re.search(r"· (\S+\.jpg)", position.inner_text()).group(1)
            page.wait_for_selector("[data-testid=annotate-stage] img")
            if i == 0:
                screenshot(page, "04-annotate-classification")
            page.keyboard.press("1" if name in ant_names else "2")
        page.wait_for_selector("text=End of the list")
        view = api.get("/projects").json()[0]
        views = api.get(f"/projects/{view['id']}/views").json()
        listing = api.get(f"/projects/{view['id']}/images", params={"view_id": views[0]["id"], "limit": 50}).json()
        labels = {item["original_name"]: item["annotation"]["concepts"] for item in listing["items"]}
        assert labels == {**{n: ["ants"] for n in ant_names}, **{p.name: ["bees"] for p in bees}}

        # The images page now shows each image's concept, and filters by it.
        page.click(".tabs a:has-text('Images')")
        page.select_option("select[aria-label=concept]", label="bees")
        page.wait_for_function("document.querySelectorAll('[data-testid=thumb]').length === 6")
        assert page.inner_text("[data-testid=thumbs]").count("bees") == 6
