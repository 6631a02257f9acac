"""'Try N variations' from the models library: the sweep's trials appear ranked as the worker finishes them,
and its best trial becomes a version that trains and opens from the sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import chromium_page, screenshot
from studio_steps import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_try_variations_ranks_trials_and_opens_the_best_version(studio, datasets_dir: Path):
    api = studio.api()
    project = api.post("/projects", json={"name": "Sweep"}).json()
    view = api.post(f"/projects/{project['id']}/views", json={"name": "species", "kind": "classification",
                                                               "concepts": ["ants", "bees"]}).json()
    items = []
    for label in ("ants", "bees"):
        paths = sorted((datasets_dir / "ants_bees" / "train" / label).glob("*.jpg"))[:8]
        uploaded = api.post(f"/projects/{project['id']}/images", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in paths])
        items += [{"image_id": image["id"], "concept": label} for image in uploaded.json()["images"]]
    assert api.post(f"/views/{view['id']}/annotations/batch", json={"items": items}).status_code == 200
    model = api.post(f"/views/{view['id']}/models", json={"name": "species"}).json()
    # A first version (few epochs, small images): the sweep tries variations of its settings.
    first = api.post(f"/models/{model['id']}/versions", json={"name": "v1", "settings": {"epochs": 4, "image_size": 96}}).json()

    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.goto(f"/#/projects/{project['id']}/views/{view['id']}/models")
        page.wait_for_selector("[data-testid=version-row] .badge.succeeded", timeout=300_000)
        page.click("[data-testid=open-sweep-form]")
        page.fill("[data-testid=sweep-trials]", "8")
        assert page.inner_text("[data-testid=try-variations]") == "Try 8 variations"
        assert "starting from v1" in page.inner_text("[data-testid=sweep-form]")
        screenshot(page, "60-sweep-form")
        page.click("[data-testid=try-variations]")
        page.wait_for_selector("[data-testid=sweep-card]")
        page.wait_for_selector("[data-testid=sweep-trial-row]", timeout=300_000)
        screenshot(page, "61-sweep-running")
        link = page.wait_for_selector("[data-testid=sweep-best-version]", timeout=300_000)
        rows = page.locator("[data-testid=sweep-trial-row]")
        assert rows.count() == 8
        assert "8 of 8 trials finished" in page.inner_text("[data-testid=sweep-progress]")
        ranks = [int(rows.nth(i).locator("td").nth(0).inner_text()) for i in range(8)]
        assert ranks == list(range(1, 9))
        screenshot(page, "62-sweep-finished")

        sweep = api.get(f"/models/{model['id']}/sweeps").json()[0]
        assert sweep["status"] == "succeeded" and sweep["settings"]["epochs"] == 4 and sweep["settings"]["image_size"] == 96
        link.click()
        page.wait_for_selector("[data-testid=training-stats]")
        assert f"/versions/{sweep['best_version_id']}" in page.url
        page.wait_for_selector("[data-testid=training-stats] .badge.succeeded", timeout=300_000)
        screenshot(page, "63-sweep-best-version")
        best = api.get(f"/versions/{sweep['best_version_id']}").json()
        top = sweep["results"][0]
        assert best["settings"]["learning_rate"] == pytest.approx(top["learning_rate"]) and best["settings"]["epochs"] == 4
        assert best["summary"]["counts"]["cache_misses"] == 0  # the sweep's features: nothing computed again
        assert first["id"] != best["id"]
