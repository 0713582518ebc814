"""The ASGI application: routes, middleware and lifespan of one instance."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fediverse_stories import jobs  # noqa: F401 - registers the job handlers
from fediverse_stories.context import Clock, Context, utc_now
from fediverse_stories.services.instance import load_secret
from fediverse_stories.settings import Settings
from fediverse_stories.web import (
    actors,
    admin,
    auth,
    comments,
    health,
    inbox,
    notifications,
    objects,
    pages,
    wellknown,
)
from fediverse_stories.web.sessions import InstanceSessionMiddleware
from fediverse_stories.web.templating import render
from fediverse_stories.worker import Worker

STATIC_DIR = Path(__file__).resolve().parent / "static"

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        b"default-src 'none'; style-src 'self'; img-src 'self' https: data:; "
        b"form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    ),
]


SECURITY_HEADER_NAMES = frozenset(name for name, _ in SECURITY_HEADERS)


class SecurityHeadersMiddleware:
    """Headers that keep remote content inert even if a sanitiser ever missed something."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                if present.isdisjoint(SECURITY_HEADER_NAMES):
                    headers += SECURITY_HEADERS  # the usual case, and the inbox's hot path
                else:
                    headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class RefuseNulMiddleware:
    """A 400 for a NUL character in the path or the query: no handler can use one, and
    PostgreSQL refuses it in any text it is asked to compare (a 500 before this)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]):
            response = JSONResponse({"error": "NUL character in the URL"}, status_code=400)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if "html" in request.headers.get("accept", "") or request.method == "POST":
        return render(
            request,
            "error.html",
            {"status": exc.status_code, "detail": exc.detail},
            exc.status_code,
        )
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


def create_app(
    settings: Settings,
    http_client: httpx.AsyncClient | None = None,
    *,
    clock: Clock = utc_now,
    run_worker: bool = False,
    server_process: bool = False,
) -> Starlette:
    """One instance as an ASGI app; `run_worker` runs the background worker in-process;
    `server_process` says the app owns its process (`serve`), not one app of many (tests)."""
    ctx = Context.build(settings, clock=clock, http=http_client)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await load_secret(ctx)
        if server_process:
            keep_startup_out_of_gc()
        worker_task: asyncio.Task[None] | None = None
        stop = asyncio.Event()
        if run_worker:
            worker_task = asyncio.create_task(Worker(ctx).run_forever(stop))
        try:
            yield
        finally:
            stop.set()
            if worker_task is not None:
                await worker_task
            await ctx.close()

    routes = [
        # First: the inbox is the busiest route, and the router tries routes in order (the 15
        # before it cost about 5% of an inbox request's CPU). Its paths take only POST.
        *inbox.routes,
        *wellknown.routes,
        *actors.routes,  # before pages: /users/NAME answers ActivityStreams JSON too
        *objects.routes,  # before pages: /stories/ID likewise
        *comments.routes,
        *pages.routes,
        *auth.routes,
        *admin.routes,
        *notifications.routes,
        *health.routes,
        Mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeadersMiddleware),
            Middleware(RefuseNulMiddleware),
            Middleware(InstanceSessionMiddleware, ctx=ctx),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    return app


def web_app_from_environ() -> Starlette:
    """`serve --workers N --no-worker`: the factory each uvicorn worker process calls."""
    return create_app(Settings.from_environ(), server_process=True)


def app_with_worker_from_environ() -> Starlette:
    """`serve --workers N`: the factory each uvicorn worker process calls; each runs a worker."""
    return create_app(Settings.from_environ(), run_worker=True, server_process=True)


# Allocations between young-generation collections (CPython's default is 700). A fan-out of
# 1,000 deliveries ran about 80 of them plus 8 older ones in the worker, 60-90 ms of its ~1 s
# of CPU, each finding the jobs in flight still alive; at 10,000, 2 collections took 25 ms.
# Reference counting frees nearly everything at once; this only delays freeing cycles.
YOUNG_COLLECTION_THRESHOLD = 10_000


def keep_startup_out_of_gc() -> None:
    """Move everything alive after start-up (modules, SQLAlchemy's metadata and caches) out of
    the collector's reach, and collect the young generation less often. A full collection
    scanned all of it: about 55 ms with the event loop stopped, a few times a minute under a
    fan-out (BENCHMARKS.md, section 2)."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, older, oldest)
