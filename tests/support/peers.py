"""Fake remote instances ("sinks") for delivery tests, and bulk remote followers.

A sink is a tiny Starlette app registered on the factory's host-routed transport. Its inboxes
(`/inbox` shared, `/users/NAME/inbox` personal) verify every request the way a real peer would:
the Digest and the Cavage signature, with the sender's public key fetched from the sender's
actor document through the same routed client (cached per key id). It records what it received
and answers with programmed statuses (`sink.answer(503, 202)`, `sink.answer((429, {...}))`,
per path with `sink.answer(410, path=...)`), then 202 once the program is used up. A `gate`
(an asyncio.Event) makes it slow on demand; a request that fails verification gets 401.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import insert, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activitypub.digest import verify_digest
from activitypub.errors import DigestMismatch
from activitypub.keys import PublicKey, load_public_pem
from activitypub.signatures import claimed_key_id, verify_request_with_key
from activitypub.vocab import ACTIVITY_JSON
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Follow, FollowState
from fediverse_stories.services.accounts import get_account
from tests.support.instances import InstanceFactory

Answer = int | tuple[int, dict[str, str]]


@dataclass
class Received:
    """One verified POST to an inbox and the status the sink answered."""

    path: str
    key_id: str
    activity: dict[str, Any]
    status: int


@dataclass
class Sink:
    netloc: str
    http: httpx.AsyncClient
    clock: Callable[[], float]
    program: list[Answer] = field(default_factory=list)
    program_for: dict[str, list[Answer]] = field(default_factory=dict)  # by request path
    received: list[Received] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why a request failed verification
    gate: asyncio.Event | None = None  # when set, every inbox POST waits for it
    arrived: asyncio.Event = field(default_factory=asyncio.Event)  # a POST reached the inbox
    _keys: dict[str, PublicKey] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return f"http://{self.netloc}"

    @property
    def shared_inbox(self) -> str:
        return f"{self.base}/inbox"

    def personal_inbox(self, name: str) -> str:
        return f"{self.base}/users/{name}/inbox"

    def answer(self, *answers: Answer, path: str | None = None) -> None:
        """Answer the next POSTs (to `path` only, if given) with these statuses, optionally with
        headers, in order."""
        (self.program if path is None else self.program_for.setdefault(path, [])).extend(answers)

    @property
    def delivered(self) -> list[Received]:
        """What the sink accepted (answered 2xx)."""
        return [r for r in self.received if 200 <= r.status < 300]

    def delivered_ids(self) -> list[str]:
        return [str(r.activity.get("id")) for r in self.delivered]

    async def _key(self, key_id: str) -> PublicKey:
        key = self._keys.get(key_id)
        if key is None:
            response = await self.http.get(key_id, headers={"Accept": ACTIVITY_JSON})
            response.raise_for_status()
            document = response.json()
            public = document.get("publicKey", document)
            if isinstance(public, list):
                public = next(k for k in public if k.get("id") == key_id)
            assert public.get("id") == key_id, f"{key_id} is not the key the document names"
            key = load_public_pem(public["publicKeyPem"])
            self._keys[key_id] = key
        return key

    async def inbox(self, request: Request) -> Response:
        self.arrived.set()
        body = await request.body()
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = list(request.headers.items())
        try:
            digest = request.headers.get("digest")
            if digest is None:
                raise DigestMismatch("no Digest header")
            verify_digest(digest, body)
            key_id = claimed_key_id(headers)
            key = await self._key(key_id)
            verify_request_with_key("POST", target, headers, body, key, clock=self.clock)
            activity = json.loads(body)
        except Exception as error:  # anything unverifiable is refused and remembered
            self.rejected.append(f"{type(error).__name__}: {error}")
            return Response(status_code=401)
        if self.gate is not None:
            await self.gate.wait()
        status, extra = 202, dict[str, str]()
        program = self.program_for.get(request.url.path) or self.program
        if program:
            answer = program.pop(0)
            status, extra = answer if isinstance(answer, tuple) else (answer, {})
        self.received.append(Received(request.url.path, key_id, activity, status))
        return Response(status_code=status, headers=extra)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/inbox", self.inbox, methods=["POST"]),
                Route("/users/{name}/inbox", self.inbox, methods=["POST"]),
            ]
        )


class Peers:
    """Creates sinks on an InstanceFactory's routed transport."""

    def __init__(self, factory: InstanceFactory, clock: Callable[[], datetime]) -> None:
        self.factory = factory
        self.clock = clock
        self.sinks: dict[str, Sink] = {}

    def add(self, netloc: str) -> Sink:
        sink = Sink(netloc, self.factory.http, clock=lambda: self.clock().timestamp())
        self.factory.transport.add(netloc, httpx.ASGITransport(app=sink.app()))
        self.sinks[netloc] = sink
        return sink


DUMMY_PEM = "-----BEGIN PUBLIC KEY-----\nnot used in these tests\n-----END PUBLIC KEY-----\n"


async def add_remote_followers(
    ctx: Context,
    author_name: str,
    followers: list[tuple[str, str, bool]],
) -> dict[str, int]:
    """Insert remote actors following `author_name`, accepted, in two bulk statements.

    Each follower is (netloc, username, shared): its personal inbox is
    `http://NETLOC/users/USERNAME/inbox`, and with `shared` it also has `http://NETLOC/inbox`.
    Returns actor id by actor URI.
    """
    now = ctx.clock()
    rows = [
        {
            "uri": f"http://{netloc}/users/{name}",
            "local": False,
            "type": "Person",
            "username": name,
            "domain": netloc,
            "display_name": name,
            "summary": "",
            "inbox_url": f"http://{netloc}/users/{name}/inbox",
            "shared_inbox_url": f"http://{netloc}/inbox" if shared else None,
            "followers_url": f"http://{netloc}/users/{name}/followers",
            "key_id": f"http://{netloc}/users/{name}#main-key",
            "public_key_pem": DUMMY_PEM,
            "manually_approves_followers": False,
            "hide_followers": False,
            "suspended": False,
            "blocks_us": False,
            "created_at": now,
            "fetched_at": now,
        }
        for netloc, name, shared in followers
    ]
    uris = [f"http://{netloc}/users/{name}" for netloc, name, _ in followers]
    async with ctx.sessions.begin() as session:
        author_id = (await get_account(session, author_name)).actor_id
        await session.execute(insert(Actor), rows)
        ids: dict[str, int] = {}
        for start in range(0, len(uris), 500):  # keep IN lists modest
            found = await session.execute(
                select(Actor.uri, Actor.id).where(Actor.uri.in_(uris[start : start + 500]))
            )
            ids.update({uri: actor_id for uri, actor_id in found.all()})
        await session.execute(
            insert(Follow),
            [
                {
                    "follower_id": ids[uri],
                    "followed_id": author_id,
                    "state": FollowState.ACCEPTED,
                    "activity_uri": f"{uri}#follow",
                    "created_at": now,
                }
                for uri in uris
            ],
        )
    return ids
