"""Helpers of the fault scenarios (tests/adversarial/test_faults.py): a fake clock, a peer that is
down for a while, a queue driven on the fake clock, a check that a 202 follows a commit, and a
Mastodon-shaped remote whose actor can rotate its key or be deleted.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from fediverse_stories.db.models import InboxActivity, Job, JobState
from fediverse_stories.worker import Worker
from tests.support.instances import Instance
from tests.support.mastodon import MastodonRemote

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class Clock:
    """The fake clock every instance, sink and remote of a scenario reads."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def timestamp(self) -> float:
        return self.now.timestamp()

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Attempt:
    at: datetime
    activity_id: str
    answer: str  # "503", "refused" or "passed" (handed to the real peer)


@dataclass
class Outage(httpx.AsyncBaseTransport):
    """A peer that is down until `back_at` (answering 503, or refusing connections), then the
    real peer (`inner`) again. Every attempt is recorded with the fake time it was made at."""

    inner: httpx.AsyncBaseTransport
    clock: Clock
    back_at: datetime
    mode: str = "503"  # or "refused"
    attempts: list[Attempt] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        activity_id = str(json.loads(request.content).get("id")) if request.content else "?"
        if self.clock() < self.back_at:
            self.attempts.append(Attempt(self.clock(), activity_id, self.mode))
            if self.mode == "refused":
                raise httpx.ConnectError("[Errno 111] Connection refused", request=request)
            return httpx.Response(503, request=request, headers={"Content-Length": "0"})
        self.attempts.append(Attempt(self.clock(), activity_id, "passed"))
        return await self.inner.handle_async_request(request)


async def jobs(instance: Instance, kind: str | None = None) -> list[Job]:
    async with instance.ctx.sessions() as session:
        query = select(Job).order_by(Job.id)
        if kind is not None:
            query = query.where(Job.kind == kind)
        return list((await session.execute(query)).scalars())


async def next_due(instance: Instance) -> datetime | None:
    """When the next queued job is due (a claimed one counts at its lease's end)."""
    async with instance.ctx.sessions() as session:
        queued = (
            await session.execute(select(func.min(Job.run_at)).where(Job.state == JobState.QUEUED))
        ).scalar()
        leased = (
            await session.execute(
                select(func.min(Job.lease_until)).where(Job.state == JobState.CLAIMED)
            )
        ).scalar()
    times = [_aware(t) for t in (queued, leased) if t is not None]
    return min(times) if times else None


def _payload(value: Any) -> dict[str, Any]:
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else {}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def drive(
    instance: Instance, clock: Clock, *, limit: timedelta, step: timedelta | None = None
) -> int:
    """Run the queue on the fake clock: jump to each next due time and run what is due, until
    nothing is left or `limit` has passed. The number of rounds that ran jobs."""
    deadline = clock.now + limit
    rounds = 0
    for _ in range(100_000):
        ran = await Worker(instance.ctx).run_until_idle()
        rounds += bool(ran)
        due = await next_due(instance)
        if due is None or due > deadline:
            return rounds
        if due > clock.now:
            clock.now = due if step is None else min(due, clock.now + step)
        elif not ran:
            # A lease is taken over only once it has run out (lease_until < now): step past it.
            clock.now += timedelta(milliseconds=1)
    raise AssertionError("the queue does not become idle")


def committed_check(
    app: Any, database_url: str, seen: list[tuple[int, bool]]
) -> Callable[[Any, Any, Any], Awaitable[None]]:
    """An ASGI wrapper around `app` that, the moment the app starts a 202 answer to an inbox
    POST, looks from a separate connection (its own engine) for the activity's stored row and
    its queued processing job; it appends (status, found) to `seen` before the answer leaves."""
    engines: dict[str, Any] = {}

    async def visible(activity_id: str) -> bool:
        engine = engines.get("e")
        if engine is None:
            engine = engines["e"] = create_async_engine(database_url)
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    select(InboxActivity.id).where(InboxActivity.uri == activity_id)
                )
            ).first()
            if row is None:
                return False
            payloads = (
                await connection.execute(select(Job.payload).where(Job.kind == "inbox"))
            ).scalars()
            return any(_payload(p).get("id") == row[0] for p in payloads)

    async def wrapper(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or "inbox" not in scope["path"]:
            await app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> Any:
            message = await receive()
            if message["type"] == "http.request":
                chunks.append(message.get("body", b""))
            return message

        async def checking_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                status = int(message["status"])
                found = False
                if status == 202:
                    try:
                        activity_id = str(json.loads(b"".join(chunks))["id"])
                    except (ValueError, KeyError, TypeError):
                        activity_id = ""
                    found = await visible(activity_id)
                seen.append((status, found))
            await send(message)

        await app(scope, recording_receive, checking_send)

    async def close() -> None:
        if "e" in engines:
            await engines["e"].dispose()

    wrapper.close = close  # type: ignore[attr-defined]
    return wrapper


class Remote(MastodonRemote):
    """The Mastodon-shaped remote at mastodon.test, on the fake clock, whose actor alice can
    rotate her key (`rotate(key)`) or be deleted (`gone = True`: her document answers 410)."""

    gone: bool = False
    hold_fetches: int = 0  # hold actor fetches until this many are in flight (at most 2 s)
    _fetches_in_flight: int = 0

    async def actor_document(self, request: Any) -> Any:
        if self.hold_fetches:
            self._fetches_in_flight += 1
            deadline = time.monotonic() + 2
            while self._fetches_in_flight < self.hold_fetches and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
        if self.gone:
            return self._activity_json({"id": self.actor()["id"], "type": "Tombstone"}, status=410)
        return await super().actor_document(request)

    def rotate(self, key: Any) -> None:
        self.key = key
