"""Running instances in one process: each app on its own database, joined by a host-routed client.

Every app's outgoing HTTP goes through the same `httpx.AsyncClient`, whose transport hands a
request for `a.test` to a.test's app (ASGITransport) and so on: several instances federate for
real (real signatures, real databases) without sockets.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from starlette.applications import Starlette

from fediverse_stories.app import create_app
from fediverse_stories.context import Clock, Context, utc_now
from fediverse_stories.settings import Settings
from fediverse_stories.worker import Worker
from tests.support.databases import DatabaseTemplates


class HostRoutingTransport(httpx.AsyncBaseTransport):
    """Routes each request by its host (with port) to the ASGI app registered for it."""

    def __init__(self) -> None:
        self.routes: dict[str, httpx.AsyncBaseTransport] = {}
        self.requests: list[httpx.Request] = []

    def add(self, netloc: str, transport: httpx.AsyncBaseTransport) -> None:
        self.routes[netloc] = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        netloc = request.url.netloc.decode()
        transport = self.routes.get(netloc)
        if transport is None:
            raise httpx.ConnectError(f"no test host {netloc}", request=request)
        return await transport.handle_async_request(request)


@dataclass
class Instance:
    """One running instance: its app, context and a client that talks to it like a browser would."""

    app: Starlette
    settings: Settings
    client: httpx.AsyncClient
    admin_password: str
    database_url: str
    _exit: contextlib.AsyncExitStack = field(repr=False, default_factory=contextlib.AsyncExitStack)

    @property
    def ctx(self) -> Context:
        ctx: Context = self.app.state.ctx
        return ctx

    async def run_worker(self) -> int:
        """Run every due job until the queue is idle."""
        return await Worker(self.ctx).run_until_idle()


async def settle(*instances: Instance, rounds: int = 20) -> None:
    """Run every instance's worker until no instance has work left (one's deliveries are the
    next one's inbox jobs, so several rounds)."""
    for _ in range(rounds):
        if sum([await instance.run_worker() for instance in instances]) == 0:
            return
    raise AssertionError("the instances did not settle")


class InstanceFactory:
    def __init__(self, templates: DatabaseTemplates, directory: Path) -> None:
        self.templates = templates
        self.directory = directory
        self.transport = HostRoutingTransport()
        self.http = httpx.AsyncClient(transport=self.transport, timeout=10)
        self.instances: list[Instance] = []

    async def start(
        self, base_url: str, *, clock: Clock = utc_now, env: dict[str, str] | None = None
    ) -> Instance:
        database_url = await self.templates.new_database(base_url)
        data_dir = self.directory / base_url.split("//", 1)[1].replace(":", "_")
        data_dir.mkdir(parents=True, exist_ok=True)
        environ = self.templates.settings_environ(base_url, database_url, data_dir)
        environ.update(env or {})
        settings = Settings.from_environ(environ, env_file=None)
        app = create_app(settings, self.http, clock=clock)
        stack = contextlib.AsyncExitStack()
        await stack.enter_async_context(app.router.lifespan_context(app))
        asgi = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000 + len(self.instances)))
        self.transport.add(settings.host, asgi)
        client = httpx.AsyncClient(transport=asgi, base_url=base_url, follow_redirects=False)
        instance = Instance(
            app=app,
            settings=settings,
            client=client,
            admin_password=self.templates.admin_password(base_url),
            database_url=database_url,
            _exit=stack,
        )
        self.instances.append(instance)
        return instance

    async def close(self) -> None:
        for instance in reversed(self.instances):
            await instance.client.aclose()
            await instance._exit.aclose()
            await self.templates.drop(instance.database_url)
        await self.http.aclose()


async def sign_in(instance: Instance, username: str, password: str) -> httpx.Response:
    """Sign in through the real login form (CSRF token and all)."""
    page = await instance.client.get("/login")
    token = csrf_from(page.text)
    return await instance.client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


def csrf_from(html: str) -> str:
    marker = 'name="csrf_token" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]
