"""Starlette app: sign-in, /chat and /api/chat, /audit, /healthz, static files, and the MCP endpoint /mcp."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic_ai.models import Model
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from fleetprompt.chat.endpoint import ChatService
from fleetprompt.mcp_server import build_mcp_http_app
from fleetprompt.platform import Platform
from fleetprompt.runner.worker import EmbeddedRunner
from fleetprompt.web import audit, chat, signin
from fleetprompt.web.pages import STATIC_DIR
from fleetprompt.web.session import session_middleware

log = logging.getLogger(__name__)


def _health(platform: Platform, runner_mode: str) -> tuple[bool, dict[str, Any]]:
    database: dict[str, Any] = {"backend": platform.db.dialect}
    try:
        with platform.db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        database["ok"] = True
    except Exception as exc:
        log.warning("health check: database unreachable: %s", type(exc).__name__)
        database.update(ok=False, error="database unreachable")
    huey = platform.runner.huey
    queue: dict[str, Any] = {"backend": type(huey).__name__}
    try:
        queue.update(ok=True, pending=huey.pending_count(), scheduled=huey.scheduled_count())
    except Exception as exc:
        log.warning("health check: queue unreachable: %s", type(exc).__name__)
        queue.update(ok=False, error="queue unreachable")
    ok = database["ok"] and queue["ok"]
    return ok, {"status": "ok" if ok else "degraded", "database": database, "queue": queue, "runner": runner_mode}


def create_app(
    platform: Platform, *, run_runner: bool = True, workers: int = 2, chat_model: Model | None = None
) -> Starlette:
    """`chat_model` replaces the configured model (tests pass a FunctionModel)."""
    embedded = EmbeddedRunner(platform.runner, workers) if run_runner else None
    runner_mode = "embedded" if embedded else "external"
    mcp_server, mcp_app = build_mcp_http_app(platform)

    async def healthz(_request: Request) -> JSONResponse:
        ok, body = await run_in_threadpool(_health, platform, runner_mode)
        return JSONResponse(body, status_code=200 if ok else 503)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        if embedded is not None:
            embedded.start()
        try:
            async with mcp_server.session_manager.run():  # a mounted app's own lifespan never runs
                yield
        finally:
            if embedded is not None:
                await run_in_threadpool(embedded.stop)
            platform.close()

    async def home(_request: Request) -> RedirectResponse:
        return RedirectResponse("/chat", status_code=303)

    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        *signin.routes,
        *chat.routes,
        *audit.routes,
        # The MCP app answers /mcp itself (with its bearer-token and Host checks); it is mounted last.
        Mount("/", app=mcp_app),
    ]
    app = Starlette(routes=routes, middleware=[session_middleware(platform)], lifespan=lifespan)
    app.state.platform = platform
    app.state.chat = ChatService(platform.ledger, chat_model)
    return app
