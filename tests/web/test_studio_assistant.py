"""The training form as a first-time user meets it: a basic view of five settings with the rest under a
closed "Advanced"; "find for me" runs the learning-rate test on the view's real photos and fills the rate;
"suggest settings for my data" lists each value with its reason and asks what the data cannot tell."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import chromium_page, screenshot, wait_until
from studio_steps import annotated_ants_bees_view, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_basic_form_find_for_me_and_suggestions_with_questions(studio, datasets_dir: Path):
    project_id, view_id = annotated_ants_bees_view(studio, datasets_dir, "First model", per_class=10)
    api = studio.api()
    schema = api.get("/settings/schema", params={"task": "classification"}).json()
    basic = [n for n, p in schema["schema"]["properties"].items() if p.get("basic")]
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.goto(f"/#/projects/{project_id}/views/{view_id}/train")
        page.wait_for_selector("[data-testid=train-form]")

        # The basic view: the five fields the schema marks basic, numbers first; everything else folded away.
        shown = page.locator("[data-testid=basic-settings] [data-field], [data-testid=basic-settings] [data-basic-switch]")
        names = [shown.nth(i).get_attribute("data-field") or shown.nth(i).get_attribute("data-basic-switch") for i in range(shown.count())]
        assert names == ["learning_rate", "epochs", "augmented_copies", "fine_tune", "backbone"] and set(names) == set(basic)
        for name in names:
            assert page.locator(f"[data-testid=basic-settings] [data-field={name}], [data-basic-switch={name}]").is_visible(), name
        advanced = page.locator("[data-testid=advanced-settings]")
        assert not advanced.evaluate("d => d.open")
        assert "more settings" in advanced.locator("> summary").inner_text()
        for name in ("optimizer", "batch_size", "validation_split", "early_stopping", "augmented_copies"):
            assert not page.locator(f"[data-field={name}]").is_visible(), name
        # Augmentation as on/off, over augmented_copies: off is 0, on its default.
        switch = page.locator("[data-basic-switch=augmented_copies]")
        assert "Off: augmented copies 0" in switch.inner_text() and "Advanced › Augmentation" in switch.inner_text()
        page.uncheck("#setting-augmented_copies-switch")
        assert page.input_value("#setting-augmented_copies") == "0"
        page.check("#setting-augmented_copies-switch")
        assert page.input_value("#setting-augmented_copies") == str(schema["defaults"]["augmented_copies"])
        screenshot(page, "50-train-form-basic")

        advanced.locator("> summary").click()
        for name in schema["schema"]["properties"]:
            if name not in schema["not_applicable"] and name not in basic:
                assert page.locator(f"[data-testid=advanced-settings] [data-field={name}]").is_visible(), name
        screenshot(page, "51-train-form-advanced-open")
        advanced.locator("> summary").click()

        # "Find for me": a range test on the view's photos, its curve with the rate marked, and "use this rate".
        page.click("[data-testid=find-rate]")
        page.wait_for_selector("[data-testid=lr-chart] canvas", timeout=240_000)
        suggested = page.inner_text("[data-testid=lr-suggestion]")
        assert 1e-6 <= float(suggested) < 1
        assert "falls fastest" in page.inner_text("[data-testid=lr-result]")
        page.click("[data-testid=use-rate]")
        assert page.input_value("#setting-learning_rate") == suggested
        assert page.locator("[data-field=learning_rate].changed").count() == (0 if float(suggested) == 0.001 else 1)
        screenshot(page, "52-train-form-find-for-me")

        # Suggestions: each value with its reason, the counts read, and questions whose answers set fields.
        page.click("[data-testid=suggest-settings]")
        page.wait_for_selector("[data-testid=suggestions]")
        split = page.inner_text("[data-testid=suggestion-validation_split]")
        assert "0.4" in split and "validation" in split  # 10 images a concept: the most held out
        assert page.input_value("#setting-validation_split") == "0.4"
        assert "per concept" in page.inner_text("[data-testid=suggestion-counts]")
        assert "fewer than 20 training images" in page.inner_text("[data-testid=suggestion-warnings]")
        flip = page.locator("[data-testid=question-horizontal_flip]")
        assert "Does left or right matter in your images?" in flip.inner_text()
        assert page.is_checked("#setting-horizontal_flip")
        flip.locator("button:has-text('yes, left and right matter')").click()
        assert not page.is_checked("#setting-horizontal_flip")
        assert flip.locator("button[aria-pressed=true]").inner_text().startswith("yes, left and right matter")
        colour = page.locator("[data-testid=question-color]")
        colour.locator("button:has-text('yes, colour matters')").click()
        assert page.input_value("#setting-color") == "0"
        wait_until(page, "document.querySelector('[data-testid=question-color] button[aria-pressed=true]') !== null")
        screenshot(page, "53-train-form-suggestions")
    assert api.get(f"/views/{view_id}/models").json() == []  # nothing was trained or created
