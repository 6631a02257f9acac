"""Playwright helpers for the studio's browser tests: Debian's Chromium, screenshots, console errors."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("VISIONTRAIN_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("VISIONTRAIN_SCREENSHOTS", REPO / "test-artifacts" / "screenshots"))


def require_chromium() -> None:
    if not CHROMIUM.is_file():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: install Debian's package (apt-get install -y chromium) or set VISIONTRAIN_CHROMIUM")


@contextmanager
def chromium_page(base_url: str, *, width: int = 1440, height: int = 900) -> Iterator:
    """A fresh page on ``base_url``; fails the test if the page logs a JavaScript error."""
    from playwright.sync_api import sync_playwright

    require_chromium()
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=base_url, viewport={"width": width, "height": height})
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda msg: msg.type == "error" and errors.append(f"console: {msg.text}"))
            refused: list[str] = []
            page.on("response", lambda r: r.status >= 400 and refused.append(f"{r.status} {r.request.method} {r.url}"))
            page.refused_requests = refused
            page.set_default_timeout(15_000)
            page.js_errors = errors  # read by tests that expect a failing request
            try:
                yield page
            except BaseException as exc:
                screenshot(page, "FAILED")  # what the page showed when the test failed
                if refused and hasattr(exc, "add_note"):
                    exc.add_note("refused requests:\n" + "\n".join(refused))
                raise
        finally:
            browser.close()
    unexpected = [e for e in errors if "status of 4" not in e]  # refused requests are tested for on purpose
    assert not unexpected, "JavaScript errors in the studio:\n" + "\n".join(unexpected)


def screenshot(page, name: str) -> Path:
    """Full-page screenshot into test-artifacts/screenshots/<name>.png (for a person to look at)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_until(page, expression: str, *, timeout_ms: int = 15_000, interval_ms: int = 100) -> None:
    """Wait until ``expression`` is truthy in the page. Playwright's ``wait_for_function`` compiles its
    predicate with ``eval`` inside the page, which the studio's Content-Security-Policy forbids (as it
    should); ``page.evaluate`` runs over the DevTools protocol instead, so the policy stays on in tests."""
    for _ in range(max(1, timeout_ms // interval_ms)):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(interval_ms)
    raise AssertionError(f"still false after {timeout_ms} ms in the page: {expression}")
