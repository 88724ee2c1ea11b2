"""``/docs``: Swagger UI from assets shipped in a Python package, so it works air-gapped.

The assets (Swagger UI's bundle, stylesheet, favicon) come from ``fastapi-offline``; the
page is FastAPI's own. Every URL on the page is relative to it, so the page works under
whatever path prefix a proxy serves it (``kubectl proxy``, an ingress sub-path); "Try it
out" calls the spec's ``servers``, which carry ``STEPD_ROOT_PATH``. No ReDoc: its page
loads a logo from the internet. No OAuth2 redirect page: the only scheme is bearer.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"

router = APIRouter(include_in_schema=False)


def _relative(url: str) -> str:
    # The page is /docs, so its base is the service's root: "/x" is "x" from there.
    return url.lstrip("/")


@router.get(DOCS_URL)
def swagger_ui(request: Request) -> HTMLResponse:
    """The Swagger UI page, pointing at our own assets and spec."""
    app: FastAPI = request.app
    assert app.openapi_url is not None
    return get_swagger_ui_html(
        openapi_url=_relative(app.openapi_url),
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=None,
        swagger_js_url=_relative(f"{ASSETS_URL}/swagger-ui-bundle.js"),
        swagger_css_url=_relative(f"{ASSETS_URL}/swagger-ui.css"),
        swagger_favicon_url=_relative(f"{ASSETS_URL}/favicon.png"),
        swagger_ui_parameters=app.swagger_ui_parameters,
    )


def install(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` with its assets under ``/docs/assets``."""
    assets = str(files("fastapi_offline") / "static")
    app.mount(ASSETS_URL, StaticFiles(directory=assets), name="docs-assets")
    app.include_router(router)
