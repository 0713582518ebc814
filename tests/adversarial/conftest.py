"""The battery's target: a.test with an author, a published open story, and eve@evil.test known.

`Target` snapshots the state an attack must not change (row counts of every table an activity
can touch, the public pages, the outgoing requests) so each test can say "nothing changed".

`start_guarded` runs an instance whose outgoing client is the real guarded client
(`make_guarded_client(allow_private=False)`) with an injected resolver and the real address
classifier; its inner transport is `RecordingConnector`, which records every address the guard
let through and hands the request to an in-process ASGI app by its Host header. It never opens a
socket, so no test can reach 10.x, 169.254.x or anything else.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from activitypub.addresses import IPAddress
from activitypub.fetch import make_guarded_client
from fediverse_stories.app import create_app
from fediverse_stories.context import Clock, utc_now
from fediverse_stories.db.models import (
    Activity,
    Actor,
    Comment,
    Follow,
    InboxActivity,
    Interaction,
    Job,
    Role,
    Story,
    Tombstone,
)
from fediverse_stories.services import passwords, publishing
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.remote_actors import store_actor
from fediverse_stories.services.stories import StoryDraft
from fediverse_stories.settings import Settings
from tests.adversarial.attacker import Attacker
from tests.support.instances import Instance, InstanceFactory

A = "http://a.test"
SHARED_INBOX = f"{A}/inbox"
AMINA = f"{A}/users/amina"
AMINA_INBOX = f"{AMINA}/inbox"
TABLES = {
    "stories": Story,
    "comments": Comment,
    "follows": Follow,
    "inbox_activities": InboxActivity,
    "actors": Actor,
    "interactions": Interaction,
    "tombstones": Tombstone,
    "activities": Activity,
    "jobs": Job,
}


async def counts(instance: Instance) -> dict[str, int]:
    result = {}
    async with instance.ctx.sessions() as session:
        for name, model in TABLES.items():
            result[name] = (
                await session.execute(select(func.count()).select_from(model))
            ).scalar_one()
    return result


async def add_user(instance: Instance, name: str, role: Role = Role.MEMBER) -> None:
    async with instance.ctx.sessions.begin() as session:
        await create_account(session, instance.ctx, name, "a-good-password", role=role)


@dataclass
class Target:
    """a.test under attack, the attacker at evil.test, and what "nothing changed" means."""

    a: Instance
    evil: Attacker
    factory: InstanceFactory
    story: Story
    pages: list[str] = field(default_factory=list)
    _rows: dict[str, int] = field(default_factory=dict)
    _html: dict[str, str] = field(default_factory=dict)
    _sent: int = 0
    _evil_seen: int = 0

    @property
    def client(self) -> httpx.AsyncClient:
        """How the attacker reaches a.test (its requests are not recorded as ours)."""
        return self.a.client

    async def mark(self) -> None:
        """Remember the state now: rows, pages, requests made so far."""
        self._rows = await counts(self.a)
        self._html = {path: (await self.a.client.get(path)).text for path in self.pages}
        self._sent = len(self.factory.transport.requests)
        self._evil_seen = len(self.evil.requests)

    def outgoing(self) -> list[httpx.Request]:
        """Requests a.test made since `mark` (to anyone)."""
        return list(self.factory.transport.requests[self._sent :])

    async def unchanged(self, *, outgoing: bool = True, ignore: tuple[str, ...] = ()) -> None:
        """No row, no page, (and no outgoing request) changed since `mark`."""
        rows = await counts(self.a)
        for name in ignore:
            rows.pop(name, None)
        expected = {k: v for k, v in self._rows.items() if k not in ignore}
        assert rows == expected, f"rows changed: {expected} -> {rows}"
        for path, before in self._html.items():
            assert (await self.a.client.get(path)).text == before, f"{path} changed"
        if outgoing:
            assert self.outgoing() == [], [str(r.url) for r in self.outgoing()]

    async def refused(
        self, response: httpx.Response, status: int, because: str = "", **kwargs: Any
    ) -> None:
        assert response.status_code == status, (response.status_code, response.text)
        reason = response.json()["error"]
        assert because.lower() in reason.lower(), reason
        await self.unchanged(**kwargs)

    async def settle(self) -> None:
        for _ in range(10):
            if await self.a.run_worker() == 0:
                return
        raise AssertionError("a.test did not settle")

    async def outcomes(self) -> list[str]:
        async with self.a.ctx.sessions() as session:
            return [
                str(o)
                for o in (
                    await session.execute(select(InboxActivity.outcome).order_by(InboxActivity.id))
                ).scalars()
            ]

    async def story_row(self, story_id: int | None = None) -> Story:
        async with self.a.ctx.sessions() as session:
            story = await session.get(Story, story_id or self.story.id)
            assert story is not None
            return story


async def publish(instance: Instance, title: str = "Who sets the agenda?", **draft: Any) -> Story:
    story = await publishing.publish(
        instance.ctx,
        "amina",
        StoryDraft(title=title, body_markdown="Partners did.", summary="A story.", **draft),
    )
    await instance.run_worker()
    return story


async def know(instance: Instance, attacker: Attacker, name: str = "eve") -> Actor:
    """Cache the attacker's actor (and key) at `instance`, as after an earlier verified request."""
    return await store_actor(instance.ctx, attacker.actor(name))


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    # argon2 at its default cost is ~0.5 s per account on a busy machine: the battery creates
    # accounts in every test and attacks none of them through their passwords.
    monkeypatch.setattr(
        passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    )


@pytest.fixture
async def target(instances: InstanceFactory) -> AsyncIterator[Target]:
    a = await instances.start(A)
    await add_user(a, "amina", Role.AUTHOR)
    story = await publish(a)
    evil = Attacker().register(instances)
    await know(a, evil)
    t = Target(
        a=a,
        evil=evil,
        factory=instances,
        story=story,
        pages=["/", f"/stories/{story.id}", "/network", "/users/amina"],
    )
    await t.mark()
    yield t


# ----------------------------------------------------------------------------- the guarded net

PUBLIC_ADDRESS = ipaddress.ip_address("93.184.215.14")  # a global address nobody connects to


class Resolver:
    """An injected DNS: names from `table` (a list per name, or a list of lists answered in turn),
    numeric forms as the C library's inet_aton reads them (`2130706433`, `0x7f.1`), else NXDOMAIN.
    Every question is recorded."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        answer = self.table.get(host.lower())
        if answer is not None:
            if answer and isinstance(answer[0], list):
                current = answer.pop(0) if len(answer) > 1 else answer[0]
                return [ipaddress.ip_address(a) for a in current]
            return [ipaddress.ip_address(a) for a in answer]
        try:
            return [ipaddress.ip_address(socket.inet_aton(host))]
        except OSError:
            raise httpx.ConnectError(f"NXDOMAIN {host}") from None


class RecordingConnector(httpx.AsyncBaseTransport):
    """The guard's inner transport: records each (address, Host) it was asked to connect to and
    serves it from an in-process app chosen by the Host header. Never opens a socket."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.AsyncBaseTransport] = {}
        self.connections: list[tuple[str, str]] = []

    def add(self, host: str, app: Any) -> None:
        self.apps[host] = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.headers.get("host", "")
        self.connections.append((request.url.host, host))
        assert ipaddress.ip_address(request.url.host) == PUBLIC_ADDRESS, request.url
        transport = self.apps.get(host)
        if transport is None:
            raise httpx.ConnectError(f"nothing serves {host}", request=request)
        return await transport.handle_async_request(request)


@dataclass
class Guarded:
    a: Instance
    resolver: Resolver
    connector: RecordingConnector


async def start_guarded(
    factory: InstanceFactory,
    dns: dict[str, Any],
    *,
    base_url: str = A,
    clock: Clock = utc_now,
    env: dict[str, str] | None = None,
) -> Guarded:
    """An instance with FEDIVERSE_STORIES_ALLOW_PRIVATE_ADDRESSES off and the guarded client."""
    resolver = Resolver(dns)
    connector = RecordingConnector()
    client = make_guarded_client(allow_private=False, resolver=resolver, inner=connector)
    database_url = await factory.templates.new_database(base_url)
    data_dir = factory.directory / ("guarded-" + base_url.split("//", 1)[1].replace(":", "_"))
    data_dir.mkdir(parents=True, exist_ok=True)
    environ = factory.templates.settings_environ(base_url, database_url, data_dir)
    environ["FEDIVERSE_STORIES_ALLOW_PRIVATE_ADDRESSES"] = "0"
    environ.update(env or {})
    settings = Settings.from_environ(environ, env_file=None)
    assert settings.allow_private_addresses is False
    app = create_app(settings, client, clock=clock)
    stack = contextlib.AsyncExitStack()
    await stack.enter_async_context(app.router.lifespan_context(app))
    stack.push_async_callback(client.aclose)
    asgi = httpx.ASGITransport(app=app, client=("127.0.0.1", 41000))
    instance = Instance(
        app=app,
        settings=settings,
        client=httpx.AsyncClient(transport=asgi, base_url=base_url, follow_redirects=False),
        admin_password=factory.templates.admin_password(base_url),
        database_url=database_url,
        _exit=stack,
    )
    factory.instances.append(instance)
    return Guarded(instance, resolver, connector)


# ----------------------------------------------------------------------------- shared set-ups


async def follows_remote(instance: Instance, local: str, remote_uri: str) -> None:
    """`local` follows the (already known) remote actor, accepted: as after Follow and Accept."""
    from fediverse_stories.db.models import FollowState
    from fediverse_stories.services.actors import local_actor
    from fediverse_stories.services.remote_actors import actor_by_uri

    async with instance.ctx.sessions.begin() as session:
        follower = await local_actor(session, instance.ctx, local)
        followed = await actor_by_uri(session, remote_uri)
        assert follower is not None and followed is not None
        session.add(
            Follow(
                follower_id=follower.id,
                followed_id=followed.id,
                state=FollowState.ACCEPTED,
                activity_uri=f"{follower.uri}#follows/{followed.id}",
                created_at=instance.ctx.clock(),
            )
        )


async def carried_post(t: Target, who: str = "eve", **fields: Any) -> Story:
    """A post by `who`@evil.test that a.test carries on /network (amina follows its author)."""
    if who not in t.evil.personas:
        t.evil.add(who)
    await know(t.a, t.evil, who)
    await follows_remote(t.a, "amina", t.evil.actor_id(who))
    post = t.evil.note(None, "<p>A partner's post.</p>", who, type="Article", name="Field notes")
    post.update(fields)
    response = await t.evil.post(t.client, SHARED_INBOX, t.evil.create(post, who), who=who)
    assert response.status_code == 202, response.text
    await t.settle()
    async with t.a.ctx.sessions() as session:
        story = (await session.execute(select(Story).where(Story.uri == post["id"]))).scalar_one()
    return story


async def remote_comment(t: Target, text: str = "<p>Thank you.</p>", name: str = "eve") -> Comment:
    """A comment by `name`@evil.test shown under the target story."""
    if name not in t.evil.personas:
        t.evil.add(name)
        await know(t.a, t.evil, name)
    note = t.evil.note(t.story.uri, text, name)
    response = await t.evil.post(t.client, SHARED_INBOX, t.evil.create(note, name), who=name)
    assert response.status_code == 202, response.text
    await t.settle()
    async with t.a.ctx.sessions() as session:
        comment = (
            await session.execute(select(Comment).where(Comment.uri == note["id"]))
        ).scalar_one()
    return comment
