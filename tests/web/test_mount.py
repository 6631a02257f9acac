"""mount(): the studio's shell and assets on the API's port, and a clear page when it is not built."""

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import visiontrain.web as web


def _client() -> TestClient:
    app = FastAPI()
    web.mount(app)
    return TestClient(app)


def test_shell_and_assets_are_served_without_any_external_url():
    if not web.studio_built():
        pytest.fail("the studio is not built: run scripts/build-web.sh")
    client = _client()
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-cache"
    assert '<div id="app">' in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN: works offline
    script = client.get("/static/dist/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert client.get("/static/studio.css").status_code == 200
    assert client.get("/static/dist/app.css").status_code == 200
    # Nothing is fetched from elsewhere: the only URLs in the bundle are XML namespace names.
    urls = set(re.findall(r"https?://[\w./-]+", script.text + client.get("/static/studio.css").text))
    assert urls <= {"http://www.w3.org/1998/Math/MathML", "http://www.w3.org/1999/xhtml", "http://www.w3.org/2000/svg"}, urls


def test_missing_bundle_gives_a_page_that_names_the_fix(monkeypatch, tmp_path: Path):
    monkeypatch.setattr(web, "BUNDLE", tmp_path / "app.js")
    response = _client().get("/")
    assert response.status_code == 503
    assert "scripts/build-web.sh" in response.text
