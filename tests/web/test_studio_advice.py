"""The version page while images are prepared (what, how many, time left), its "What to try next" panel
after the run, and Compare: the accuracy axis fitted to the values, only the differing settings, features reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import chromium_page, screenshot, wait_until
from studio_steps import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Larger photos and four augmented copies: the backbone runs long enough for the page to show its progress.
FIRST = {"epochs": 3, "early_stopping": False, "augmented_copies": 4, "image_size": 288, "batch_size": 16, "learning_rate": 3.0}
PER_CLASS = 30


def _view_with_photos(studio, datasets_dir: Path) -> tuple[dict, dict, dict]:
    api = studio.api()
    project = api.post("/projects", json={"name": "Advice"}).json()
    view = api.post(f"/projects/{project['id']}/views", json={"name": "species", "kind": "classification",
                                                               "concepts": ["ants", "bees"]}).json()
    items = []
    for label in ("ants", "bees"):
        # Photos the other browser tests do not use, so their features are not in the cache yet.
        paths = sorted((datasets_dir / "ants_bees" / "train" / label).glob("*.jpg"))[40:40 + PER_CLASS]
        uploaded = api.post(f"/projects/{project['id']}/images", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths])
        items += [{"image_id": image["id"], "concept": label} for image in uploaded.json()["images"]]
    assert api.post(f"/views/{view['id']}/annotations/batch", json={"items": items}).status_code == 200
    model = api.post(f"/views/{view['id']}/models", json={"name": "species"}).json()
    return project, view, model


def _wait_finished(page) -> None:
    page.wait_for_selector("[data-testid=training-stats] .badge.succeeded", timeout=300_000)


def test_progress_advice_and_compare(studio, datasets_dir: Path):
    api = studio.api()
    project, view, model = _view_with_photos(studio, datasets_dir)
    base = f"/#/projects/{project['id']}/views/{view['id']}"
    first = api.post(f"/models/{model['id']}/versions", json={"settings": FIRST}).json()

    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.goto(f"{base}/versions/{first['id']}")
        # While the backbone runs: what is prepared, originals and copies, and the time left, in words.
        page.wait_for_selector("[data-testid=run-waiting]:has-text('Preparing images:')", timeout=120_000)
        waiting = page.inner_text("[data-testid=run-waiting]")
        assert " originals + " in waiting and " augmented copies)" in waiting, waiting
        assert "the charts start with the first training batch" in waiting
        assert page.inner_text("[data-testid=stage]") == "preparing images"
        assert " images" in page.inner_text("[data-testid=stage-detail]")
        empty_chart = page.inner_text("[data-testid=chart-validation-metric] .chart-empty")
        assert empty_chart.startswith("No values yet: preparing images: "), empty_chart
        screenshot(page, "70-preparing-images")

        _wait_finished(page)
        assert page.locator("[data-testid=run-waiting]").count() == 0
        # What to try next: a rate of 3 is far too high, with the numbers and the setting to change.
        page.wait_for_selector("[data-testid=advice-item]")
        rate = page.locator("[data-testid=advice-item][data-rule=learning_rate_too_high]")
        assert rate.count() == 1
        assert "learning rate 3" in rate.locator("[data-testid=advice-evidence]").inner_text()
        assert "learning rate: 3 → 0.3" in rate.locator("[data-testid=advice-changes]").inner_text()
        link = rate.locator("[data-testid=advice-train]").get_attribute("href")
        assert f"/views/{view['id']}/train?" in link and f"model={model['id']}" in link and "set=" in link
        advice = api.get(f"/versions/{first['id']}/advice").json()
        assert page.locator("[data-testid=advice-item]").count() == len(advice["items"])
        # The accuracy chart speaks in % like the headers: its tooltip, on hover.
        chart = page.locator("[data-testid=chart-validation-metric] .u-over")
        box = chart.bounding_box()
        chart.hover(position={"x": box["width"] - 3, "y": box["height"] / 2})
        legend = page.locator("[data-testid=chart-validation-metric] .u-legend .u-series >> nth=1 >> .u-value").inner_text()
        assert legend.endswith("%"), legend
        screenshot(page, "71-advice-panel")

        # "Try it" opens the train form pre-filled with this version's settings and the advice's changes.
        rate.locator("[data-testid=advice-train]").click()
        page.wait_for_selector("[data-testid=start-from-changes]")
        assert "learning rate 0.3" in page.inner_text("[data-testid=start-from-changes]")
        assert page.input_value("[data-field=learning_rate] input") == "0.3"
        screenshot(page, "71b-train-form-from-advice")

        # The next version takes the advice (as the pre-filled form would), then Compare.
        second = api.post(f"/models/{model['id']}/versions",
                          json={"settings": {**first["settings"], **advice["items"][0]["changes"]}}).json()
        page.goto(f"{base}/versions/{second['id']}")
        _wait_finished(page)
        page.goto(f"{base}/compare?versions={first['id']},{second['id']}")
        page.wait_for_selector("[data-testid=compare-settings]")

        # Only the settings that differ, until "show all".
        differing = [r.split("\t")[0] for r in page.locator("[data-testid=compare-settings] tbody tr").all_inner_texts()]
        assert differing == ["learning rate", "gradient clip norm"], differing
        page.check("[data-testid=show-all-settings]")
        assert page.locator("[data-testid=compare-settings] tbody tr").count() > 20
        assert page.locator("[data-testid=setting-diff]").count() == 2
        page.uncheck("[data-testid=show-all-settings]")

        # Features: the second run reused every one the first computed (same photos, copies and size).
        summaries = [api.get(f"/versions/{v['id']}").json()["summary"] for v in (first, second)]
        reused = page.locator("[data-testid=compare-features]").all_inner_texts()
        counts = [s["counts"] for s in summaries]
        assert reused[1] == f"features reused: {counts[1]['cache_hits']:,} of {counts[1]['cache_hits'] + counts[1]['cache_misses']:,}"
        assert counts[1]["cache_misses"] == 0 and counts[0]["cache_misses"] > 0

        # The accuracy axis fits the values instead of spanning 0-1.
        values = [row["data"]["val_accuracy"] for v in (first, second)
                  for row in api.get(f"/versions/{v['id']}/metrics", params={"kind": "epoch"}).json()]
        wait_until(page, "!!document.querySelector('[data-testid=compare-metric-chart] .chart-box[data-y-max]')")
        drawn = page.locator("[data-testid=compare-metric-chart] .chart-box")
        low, high = float(drawn.get_attribute("data-y-min")), float(drawn.get_attribute("data-y-max"))
        assert low <= min(values) and high >= max(values) and high <= 1.0, (low, high, values)
        assert low > 0 or min(values) < 0.1, (low, values)  # not the whole 0-1 axis
        assert high - low <= 1.5 * max(0.02, max(values) - min(values)), (low, high, values)  # a sixth of a margin each side
        screenshot(page, "72-compare")
