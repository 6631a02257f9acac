"""The studio's smaller pages and states: sign-in refusal, tokens made and revoked on their page, image detail,
an unknown address, and the page a missing view gives."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from browser import chromium_page, screenshot, wait_until
from studio_steps import create_project_and_view, sign_in, upload

pytestmark = pytest.mark.browser


def test_a_wrong_token_is_refused_with_a_message_and_nothing_is_kept(studio):
    with chromium_page(studio.url) as page:
        page.goto("/")
        page.fill("#token", "vt_not-a-real-token")
        page.click("button:has-text('Sign in')")
        message = page.wait_for_selector("[role=alert]").inner_text()
        assert "not valid" in message
        assert page.evaluate("localStorage.getItem('visiontrain.token')") is None
        assert "visiontrain_token=" not in page.evaluate("document.cookie")


def test_tokens_page_image_detail_and_unknown_pages(studio, datasets_dir: Path):
    photo = sorted((datasets_dir / "ants_bees" / "val" / "ants").glob("*.jpg"))[0]
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.click("a:has-text('API tokens')")
        identity = page.wait_for_selector("[data-testid=identity]").inner_text()
        assert "studio browser tests" in identity
        page.wait_for_selector("[data-testid=token-row]:has-text('studio browser tests') .pill:has-text('this browser')")
        page.fill("#token-name", "ci runner")
        page.click("button:has-text('Create token')")
        secret = page.wait_for_selector("[data-testid=new-token-secret]").inner_text().strip()
        assert secret.startswith("vt_")
        new_row = "[data-testid=token-row]:has-text('ci runner')"
        page.wait_for_selector(f"{new_row} .badge:has-text('active')")
        check = httpx.Client(base_url=f"{studio.url}/api/v1", headers={"Authorization": f"Bearer {secret}"})
        assert check.get("/me").json()["token_name"] == "ci runner"
        screenshot(page, "30-tokens")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("button[aria-label='Revoke ci runner']")
        page.wait_for_selector(f"{new_row} .badge:has-text('revoked')")
        assert check.get("/me").status_code == 401
        assert page.is_visible("[data-testid=token-row]:has-text('studio browser tests') .badge:has-text('active')")

        create_project_and_view(page, "Details", "species", "classification", "ants, bees")
        upload(page, [photo])
        page.click("[data-testid=thumb]")
        facts = page.wait_for_selector("[data-testid=image-facts]").inner_text()
        assert photo.name in facts and "not annotated" in facts and "image/jpeg" in facts
        page.select_option("select[aria-label='training or validation']", "val")
        api = studio.api()
        view_id, image_id = (int(part) for part in page.url.split("/views/")[1].split("/images/"))
        deadline = time.monotonic() + 10
        while api.get(f"/views/{view_id}/annotations/{image_id}").json()["split"] != "val":
            assert time.monotonic() < deadline, "the image was not fixed to the validation side"
            time.sleep(0.1)
        screenshot(page, "31-image-detail")
        page.click("a:has-text('Annotate this image')")
        page.wait_for_selector(f"[data-testid=annotate-position]:has-text('{photo.name}')")
        page.wait_for_selector("[data-testid=annotate-stage][data-ready=true]")
        page.keyboard.press("1")
        page.wait_for_selector("text=End of the list")

        page.goto("/#/projects/1/views/999/images")
        assert "view 999 not found" in page.wait_for_selector("[role=alert]").inner_text()
        page.goto("/#/no/such/page")
        page.wait_for_selector("h1:has-text('Nothing here')")


def test_a_zip_of_images_is_uploaded_and_what_is_not_an_image_is_listed(studio, datasets_dir: Path, tmp_path: Path):
    import zipfile

    bees = sorted((datasets_dir / "ants_bees" / "val" / "bees").glob("*.jpg"))[:2]
    archive = tmp_path / "field-trip.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for photo in bees:
            z.write(photo, f"day1/{photo.name}")
        z.writestr("day1/notes.txt", "bees near the hive")
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        create_project_and_view(page, "Field trip", "species", "classification", "ants, bees")
        summary = upload(page, [archive])
        assert summary.startswith("2 image(s) added") and "1 rejected" in summary, summary
        assert "field-trip.zip › day1/notes.txt: not an image file (.txt)" in page.inner_text("[data-testid=rejected-files]")
        wait_until(page, "document.querySelectorAll('[data-testid=thumb]').length === 2")

        page.click(".crumbs a:has-text('Field trip')")
        page.wait_for_selector("[data-testid=view-card]:has-text('0 of 2 image(s) annotated')")
        screenshot(page, "32-project")
        page.click(".topbar a:has-text('Projects')")
        page.wait_for_selector("[data-testid=project-card]:has-text('Field trip')")
        screenshot(page, "33-projects")


def test_revoking_the_token_in_use_signs_the_browser_out(studio):
    token = studio.api().post("/tokens", json={"name": "short-lived"}).json()["token"]
    with chromium_page(studio.url) as page:
        sign_in(page, token)
        page.goto("/#/tokens")
        page.wait_for_selector("[data-testid=token-row]:has-text('short-lived') .pill:has-text('this browser')")
        questions: list[str] = []
        page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
        page.click("button[aria-label='Revoke short-lived']")
        page.wait_for_selector("button:has-text('Sign in')")
        assert "signed in with" in questions[0] and "signed out" in questions[0]
        assert page.evaluate("localStorage.getItem('visiontrain.token')") is None
    assert studio.api().get("/me").status_code == 200  # the other tokens still work
