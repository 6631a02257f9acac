"""The web studio: a single-page app served on the same port as the REST API.

``mount(app)`` adds three things to the platform's FastAPI app:

- ``GET /`` and ``GET /studio``: the page shell (``static/index.html``), never cached, so a new build
  shows at once;
- ``/static/...``: the bundled app (``static/dist/``, built by ``scripts/build-web.sh`` from ``web/``)
  and the stylesheet;
- a clear page instead of a blank screen when the bundle has not been built.

The app itself talks only to ``/api/v1`` with the token the user pastes on its login page. The routes
made for it are the API's own (``api.routers``): ``GET/POST/DELETE /api/v1/tokens`` (the tokens page),
``…/images/{id}/content?max_side=N`` (thumbnails in grids), the evaluation report's ``predictions``
(every validation image, so that any cell of the confusion matrix shows its images), and the
experiment assistant's ``/views/{id}/suggested-settings`` and ``/views/{id}/lr-find`` (the Train form).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"
BUNDLE = STATIC_DIR / "dist" / "app.js"

_NOT_BUILT = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>visiontrain</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>The web studio is not built</h1>
<p>The REST API works (<a href="/docs">/docs</a>), but the studio's JavaScript bundle is missing from
<code>{bundle}</code>.</p>
<p>Build it once with <code>scripts/build-web.sh</code> (or <code>make setup</code>), then reload this page.</p>
</body></html>"""


def studio_built() -> bool:
    return BUNDLE.is_file()


def mount(app: FastAPI) -> None:
    """Serve the studio from ``app``: the shell at ``/`` and its assets under ``/static``."""

    def shell() -> HTMLResponse:
        if not studio_built():
            return HTMLResponse(_NOT_BUILT.format(bundle=BUNDLE), status_code=503)
        # The bundle's build time in its URL: a rebuilt studio is fetched afresh, an unchanged one comes from cache.
        stamp = str(int(BUNDLE.stat().st_mtime))
        html = (STATIC_DIR / "index.html").read_text(encoding="utf-8").replace("{{build}}", stamp)
        return HTMLResponse(html, headers={"Cache-Control": "no-cache"})

    app.add_api_route("/", shell, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.add_api_route("/studio", shell, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="studio-static")
