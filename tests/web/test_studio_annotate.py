"""Annotating in the browser: an annotated archive imported (Pascal VOC), boxes drawn, moved,
resized and deleted with the mouse on real raccoon photos; tags toggled with the keyboard."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from browser import chromium_page, screenshot, wait_until
from studio_steps import create_project_and_view, sign_in, upload

pytestmark = pytest.mark.browser


def _voc_zip(raccoon: Path, names: list[str], target: Path) -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for name in names:
            archive.write(raccoon / "images" / f"{name}.jpg", f"images/{name}.jpg")
            archive.write(raccoon / "annotations" / f"{name}.xml", f"annotations/{name}.xml")
    return target


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*start)
    page.mouse.down()
    page.mouse.move((start[0] + end[0]) / 2, (start[1] + end[1]) / 2)
    page.mouse.move(*end)
    page.mouse.up()


def test_boxes_are_imported_then_drawn_moved_resized_and_deleted_with_the_mouse(studio, datasets_dir: Path, tmp_path: Path):
    raccoon = datasets_dir / "raccoon"
    archive = _voc_zip(raccoon, ["raccoon-1", "raccoon-10", "raccoon-100"], tmp_path / "raccoons-voc.zip")
    fresh = [raccoon / "images" / "raccoon-101.jpg", raccoon / "images" / "raccoon-102.jpg"]
    api = studio.api()

    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        create_project_and_view(page, "Wildlife", "raccoons", "detection", "raccoon")

        page.click("button:has-text('Import annotated archive')")
        page.select_option("#import-format", "voc")
        page.set_input_files("[data-testid=archive-dropzone-input]", str(archive))
        outcome = page.wait_for_selector("[data-testid=import-outcome]", timeout=60_000).inner_text()
        assert "3 image(s) read" in outcome and "3 annotated" in outcome, outcome
        assert upload(page, fresh).startswith("2 image(s) added")
        wait_until(page, "document.querySelectorAll('[data-testid=thumb]').length === 5")
        assert page.inner_text("[data-testid=thumbs]").count("1 box") == 3  # each VOC file has one raccoon
        screenshot(page, "20-detection-images")

        page.click("a:has-text('Annotate unannotated images')")
        page.wait_for_selector("[data-testid=annotate-position]:has-text('image 1 of 2')")
        image = page.wait_for_selector("[data-testid=annotate-stage][data-ready=true] [data-testid=box-editor] img")
        wait_until(page, "document.querySelector('[data-testid=box-editor] img').naturalWidth > 0")
        b = image.bounding_box()
        natural_width = image.evaluate("i => i.naturalWidth")
        scale = natural_width / b["width"]  # image pixels per screen pixel
        at = lambda fx, fy: (b["x"] + fx * b["width"], b["y"] + fy * b["height"])  # noqa: E731

        drag(page, at(0.2, 0.2), at(0.5, 0.6))  # draw
        assert page.locator("[data-testid=box]").count() == 1
        box = page.locator("[data-testid=box]").first.bounding_box()
        drag(page, (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2),
             (box["x"] + box["width"] / 2 + 40, box["y"] + box["height"] / 2 + 30))  # move by (40, 30)
        handle = page.locator("[data-testid=box] .handle.se").bounding_box()
        drag(page, (handle["x"] + 5, handle["y"] + 5), (handle["x"] + 65, handle["y"] + 45))  # resize by (60, 40)
        drag(page, at(0.7, 0.7), at(0.9, 0.9))  # a second box, then delete it
        assert page.locator("[data-testid=box]").count() == 2
        page.keyboard.press("Delete")
        assert page.locator("[data-testid=box]").count() == 1
        screenshot(page, "21-annotate-detection")
        image_id = int(page.get_attribute("a:has-text('image details')", "href").rsplit("/", 1)[1])
        page.keyboard.press("Enter")  # save and next
        page.wait_for_selector("[data-testid=annotate-position]:has-text('image 2 of 2')")

        project_id = api.get("/projects").json()[0]["id"]
        views = api.get(f"/projects/{project_id}/views").json()
        saved = api.get(f"/views/{views[0]['id']}/annotations/{image_id}").json()
        assert saved["annotated"] and len(saved["boxes"]) == 1
        got = saved["boxes"][0]
        x0, y0 = (0.2 * b["width"] + 40) * scale, (0.2 * b["height"] + 30) * scale
        x1, y1 = (0.5 * b["width"] + 40 + 60) * scale, (0.6 * b["height"] + 30 + 40) * scale
        tolerance = 3 * scale  # a few screen pixels
        assert got["concept"] == "raccoon"
        assert got["x_min"] == pytest.approx(x0, abs=tolerance) and got["y_min"] == pytest.approx(y0, abs=tolerance)
        assert got["x_max"] == pytest.approx(x1, abs=tolerance) and got["y_max"] == pytest.approx(y1, abs=tolerance)


def test_tags_are_toggled_with_number_keys_and_an_image_can_show_no_concept(studio, datasets_dir: Path):
    images = datasets_dir / "coco128_coco" / "images"
    # What tags.csv says they show: bowl, broccoli, orange / giraffe / potted plant, vase.
    keys = {"000000000009.jpg": ["1", "2", "3", "3"], "000000000025.jpg": ["3"], "000000000030.jpg": ["0"]}
    expected = {"000000000009.jpg": ["bowl", "broccoli"], "000000000025.jpg": ["giraffe"], "000000000030.jpg": []}
    api = studio.api()
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        create_project_and_view(page, "Everyday scenes", "objects", "tagging", "bowl, broccoli, giraffe")
        assert upload(page, [images / name for name in keys]).startswith("3 image(s) added")
        page.click(".tabs a:has-text('Annotate')")
        for i in range(3):
            position = page.wait_for_selector(f"[data-testid=annotate-position]:has-text('image {i + 1} of 3')")
            name = next(n for n in keys if n in position.inner_text())
            page.wait_for_selector("[data-testid=annotate-stage][data-ready=true]")
            for key in keys[name]:  # "3" twice on the first image: giraffe on, then off again
                page.keyboard.press(key)
            assert "unsaved changes" in position.inner_text()
            if name == "000000000009.jpg":
                screenshot(page, "22-annotate-tagging")
            page.keyboard.press("Enter")
        page.wait_for_selector("text=End of the list")

        project = next(p for p in api.get("/projects").json() if p["name"] == "Everyday scenes")
        view = api.get(f"/projects/{project['id']}/views").json()[0]
        items = api.get(f"/projects/{project['id']}/images", params={"view_id": view["id"]}).json()["items"]
        got = {i["original_name"]: sorted(i["annotation"]["concepts"]) for i in items if i["annotation"]["annotated"]}
        assert got == expected
