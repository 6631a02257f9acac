"""Steps a person takes in the studio, shared by the browser tests (each waits for the page to answer)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from browser import screenshot

TRAINING_TIMEOUT_S = 300


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


def show_setting(page, name: str) -> None:
    """Unfold what hides a setting's field ("Advanced", then its group), as a person would: by their titles."""
    for _ in range(3):
        folded = page.locator(f"details:not([open]):has([data-field={name}]) > summary")
        if not folded.count():
            return
        folded.first.click()


def set_setting(page, name: str, value: str) -> None:
    """Type a value into a setting's field, unfolding "Advanced" and its group first if they are folded."""
    show_setting(page, name)
    page.fill(f"#setting-{name}", value)


def wait_for_version(page, timeout_s: float = TRAINING_TIMEOUT_S, live_screenshot: str | None = None) -> list[str]:
    """Waits on the training page until the run finishes; returns each distinct 'epochs done' seen.
    ``live_screenshot``: a name to photograph the page under, the first time it shows a run in progress."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        epochs = page.inner_text("[data-testid=epochs-done]")
        if not seen or seen[-1] != epochs:
            seen.append(epochs)
        status = page.text_content("[data-testid=training-stats] .badge")
        if live_screenshot and status == "running" and not epochs.startswith("0 "):
            screenshot(page, live_screenshot)
            live_screenshot = None
        if status in ("succeeded", "failed", "cancelled"):
            return seen
        page.wait_for_timeout(150)
    pytest.fail(f"training did not finish in {timeout_s}s (epochs seen: {seen})")


def wait_until_succeeded(api, version_id: int, timeout_s: float = TRAINING_TIMEOUT_S) -> dict:
    """The version once it finished, which must be a success (a hang fails the test instead of blocking CI)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        version = api.get(f"/versions/{version_id}").json()
        if version["status"] in ("succeeded", "failed", "cancelled"):
            assert version["status"] == "succeeded", version["error"]
            return version
        time.sleep(0.5)
    pytest.fail(f"version {version_id} did not finish in {timeout_s}s")


def annotated_ants_bees_view(studio, datasets_dir: Path, name: str, per_class: int) -> tuple[int, int]:
    """A project whose classification view has ``per_class`` real photos of ants and of bees, annotated."""
    api = studio.api()
    project = api.post("/projects", json={"name": name}).json()
    view = api.post(f"/projects/{project['id']}/views", json={"name": "species", "kind": "classification", "concepts": ["ants", "bees"]}).json()
    items = []
    for label in ("ants", "bees"):
        paths = sorted((datasets_dir / "ants_bees" / "train" / label).glob("*.jpg"))[:per_class]
        uploaded = api.post(f"/projects/{project['id']}/images", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths])
        items += [{"image_id": image["id"], "concept": label} for image in uploaded.json()["images"]]
    assert api.post(f"/views/{view['id']}/annotations/batch", json={"items": items}).status_code == 200
    return project["id"], view["id"]
