"""``/docs``: Swagger UI from the files of a PyPI package (``fastapi-offline``), so it works offline.

FastAPI's own page loads Swagger UI from a CDN: a blank page on a machine without internet, and a
third party's script on a page that holds the user's token. Here the script and stylesheet are served
from ``/docs/assets`` and the page's one inline script is allowed by its hash in the page's own
Content-Security-Policy (the rest of the server allows no inline script).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"


def swagger_assets_dir() -> Path:
    import fastapi_offline

    return Path(fastapi_offline.__file__).parent / "static"


def _csp_for(html: str) -> str:
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    ]
    return (
        f"default-src 'self'; script-src 'self' {' '.join(hashes)}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def install_docs(app: FastAPI, url: str = "/docs") -> None:
    page = get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json",
        title=f"{app.title} - API",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
    )
    html = page.body.decode()
    headers = {"Content-Security-Policy": _csp_for(html)}

    def docs() -> HTMLResponse:
        return HTMLResponse(html, headers=headers)

    app.add_api_route(url, docs, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.mount(ASSETS_URL, StaticFiles(directory=swagger_assets_dir()), name="docs-assets")
