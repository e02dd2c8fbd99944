"""/docs (Swagger UI) and /redoc (ReDoc), served with assets of our own: no CDN, so the API's
documentation works on a machine without internet access.

The assets come from the `fastapi-offline` package, which ships the Swagger UI and ReDoc
bundles (Apache-2.0 and MIT, licences inside the bundles); we use only its files, under
/static/docs/. Like FastAPI's own pages, these are plain Starlette routes outside the
dependency system: the pages and the OpenAPI document describe routes, not data, and need no
token (api/auth.py).
"""

from __future__ import annotations

import functools
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse, Response

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
STATIC = "/static/docs"
# The pages may load nothing from elsewhere, whatever a future bundle asks for (the viewers'
# own inline start-up code needs 'unsafe-inline').
POLICY = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; worker-src 'self' blob:; frame-ancestors 'none'"
}
# The one URL of another site in the bundles: ReDoc's logo, replaced by our own icon.
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"


@functools.cache
def _redoc_bundle() -> bytes:
    return (ASSETS / "redoc.standalone.js").read_bytes().replace(_REDOC_LOGO, f"{STATIC}/favicon.png".encode())


def install_docs(app: FastAPI) -> None:
    """Add /docs and /redoc to an app created with `docs_url=None, redoc_url=None`."""

    async def redoc_bundle(_: Request) -> Response:
        return Response(_redoc_bundle(), media_type="text/javascript", headers={"Cache-Control": "max-age=3600"})

    # Before the mount, which would serve the file as shipped.
    app.add_route(f"{STATIC}/redoc.standalone.js", redoc_bundle, include_in_schema=False)
    app.mount(STATIC, StaticFiles(directory=ASSETS), name="docs-assets")
    redirect = "/docs/oauth2-redirect"

    async def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{redirect}",
            swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC}/favicon.png",
            swagger_ui_parameters=app.swagger_ui_parameters,
        )
        return _with_policy(page)

    async def oauth2_redirect(_: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{STATIC}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC}/favicon.png",
            with_google_fonts=False,
        )
        return _with_policy(page)

    app.add_route("/docs", swagger, include_in_schema=False)
    app.add_route(redirect, oauth2_redirect, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    page.headers.update(POLICY)
    return page
