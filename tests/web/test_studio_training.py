"""The Train form's checks (each bad value marked at its field before anything is sent; a rule the
server enforces across fields marked at those fields) and cancelling a run from the training page."""

from __future__ import annotations

from pathlib import Path

import pytest

from browser import chromium_page, screenshot
from studio_steps import annotated_ants_bees_view, create_project_and_view, set_setting, show_setting, sign_in, wait_for_version

pytestmark = pytest.mark.browser


def field_error(page, name: str) -> str:
    locator = page.locator(f"[data-field={name}] .field-error")
    return locator.inner_text() if locator.count() else ""


def test_bad_values_are_marked_at_their_fields_before_anything_is_sent(studio):
    api = studio.api()
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        create_project_and_view(page, "Form checks", "species", "classification", "ants, bees")
        page.click(".tabs a:has-text('Models')")
        page.click("[data-testid=train-new-version]")
        page.wait_for_selector("[data-testid=train-form]")

        cases = {
            "head_layers": ("2.5", "must be a whole number"),
            "dropout": ("0.95", "must be at most 0.9"),
            "validation_split": ("1", "must be less than 1"),
            "learning_rate": ("0", "must be more than 0"),
            "devices": ("two", 'must be a whole number'),
            "epochs": ("", "a value is needed"),
        }
        for name, (value, message) in cases.items():
            set_setting(page, name, value)
            assert message in field_error(page, name), (name, field_error(page, name))
        set_setting(page, "image_size", "")  # empty is allowed: the backbone's own size
        assert field_error(page, "image_size") == ""
        page.click("[data-testid=start-training]")
        page.wait_for_selector(f"text=Fix the {len(cases)} marked setting(s) first.")
        screenshot(page, "40-train-form-errors")
        assert api.get("/projects").json()[0]["view_count"] == 1
        view_id = api.get(f"/projects/{api.get('/projects').json()[0]['id']}/views").json()[0]["id"]
        assert api.get(f"/views/{view_id}/models").json() == []  # nothing was sent

        # Fixed, then a rule across two fields that only the server knows: both fields are marked.
        for name, value in {"head_layers": "1", "dropout": "0.3", "validation_split": "0.25", "learning_rate": "0.001",
                            "devices": "auto", "epochs": "5"}.items():
            set_setting(page, name, value)
        assert page.locator("[data-field] .field-error").count() == 0
        show_setting(page, "fine_tune")
        page.check("#setting-fine_tune")
        set_setting(page, "fine_tune_learning_rate", "0.01")
        page.click("[data-testid=start-training]")
        page.wait_for_selector("[data-field=fine_tune_learning_rate] .field-error")
        assert "at most learning_rate / 10" in field_error(page, "fine_tune_learning_rate")
        assert field_error(page, "pretrained") == ""  # "pretrained features" in the message is not the field
        screenshot(page, "41-train-form-server-rule")


@pytest.mark.slow
def test_a_run_is_cancelled_from_the_training_page(studio, datasets_dir: Path):
    project_id, view_id = annotated_ants_bees_view(studio, datasets_dir, "Cancel me", per_class=4)
    with chromium_page(studio.url) as page:
        sign_in(page, studio.token)
        page.goto(f"/#/projects/{project_id}/views/{view_id}/train")
        page.wait_for_selector("[data-testid=train-form]")
        set_setting(page, "epochs", "1000")
        show_setting(page, "early_stopping")
        page.uncheck("#setting-early_stopping")
        set_setting(page, "validation_split", "0.5")
        page.click("[data-testid=start-training]")
        page.wait_for_selector("[data-testid=training-stats] .badge.running", timeout=120_000)
        page.click("[data-testid=cancel-training]")
        wait_for_version(page, timeout_s=120)
        assert page.text_content("[data-testid=training-stats] .badge") == "cancelled"
        assert page.locator("[data-testid=cancel-training]").count() == 0
        screenshot(page, "42-training-cancelled")
