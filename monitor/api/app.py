"""The FastAPI application: the API, the web page and the Atom feed. The token guards everything but
/healthz (the OpenAPI schema and its docs page too; the page asks for it with a sign-in form); a rate
limit, safe headers, CORS only when configured, JSON errors (422 for bad parameters; an unexpected error
is logged and answered 500 without details)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from monitor import __version__
from monitor.api import atom, health, routes_feedback, routes_matches, routes_status, web
from monitor.api.context import ApiContext
from monitor.api.security import RateLimit, SafeHeaders, TokenCheck

log = logging.getLogger(__name__)


def create_app(ctx: ApiContext, token: str) -> FastAPI:
    app = FastAPI(title="monitor", version=__version__, docs_url=None, redoc_url=None, openapi_url=None,
                  description="Recent matches of East Asian trade-diplomacy rules, each with the reason it matched.")
    app.state.ctx = ctx
    users = {name: secret.get_secret_value() for name, secret in ctx.settings.api_users.items()}
    app.state.token_check = TokenCheck({"operator": token, **users})
    check = [Depends(app.state.token_check)]
    app.include_router(health.open_router)
    app.include_router(health.router, dependencies=check)
    app.include_router(routes_matches.router, dependencies=check)
    app.include_router(routes_status.router, dependencies=check)
    app.include_router(routes_feedback.router, dependencies=check)
    app.include_router(atom.router, dependencies=check)
    app.include_router(web.router)  # signs in itself: the page shows the sign-in form to a stranger

    @app.get("/openapi.json", dependencies=check, include_in_schema=False)
    def openapi() -> dict[str, Any]:
        return app.openapi()

    @app.get("/docs", dependencies=check, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title="monitor API")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # the API's error boundary
        log.exception("event=api_error path=%s", request.url.path)
        return JSONResponse({"detail": "internal error (logged)"}, 500)

    app.add_middleware(SafeHeaders)
    app.add_middleware(RateLimit, per_minute=ctx.settings.api_rate_limit)
    if ctx.settings.api_cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=ctx.settings.api_cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization"])
    return app
