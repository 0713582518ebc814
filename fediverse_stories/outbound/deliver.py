"""The `deliver` job: POST one stored activity to one inbox, signed, and judge the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Connection, Table, bindparam, delete, select
from sqlalchemy.orm import Session

from activitypub import delivery
from activitypub.digest import make_digest
from activitypub.errors import AddressRefused
from activitypub.vocab import ACTIVITY_JSON
from fediverse_stories.batching import GroupStep
from fediverse_stories.context import Context
from fediverse_stories.db.fast import FastStatement
from fediverse_stories.db.models import Activity, Actor, Follow
from fediverse_stories.services import domains
from fediverse_stories.services.signing import SigningActor, auth_for
from fediverse_stories.worker import HOST_CONCURRENCY, GiveUp, RetryLater, job_handler

PER_HOST_CONCURRENCY = HOST_CONCURRENCY  # also bounds run_once(), which claims without limits


@dataclass(frozen=True)
class _Prepared:
    """What one delivery reads from the database before it sends."""

    body: bytes
    digest: str  # the body's Digest header, computed once per activity and batch
    signer: SigningActor
    refused: str | None


_ACTIVITIES = cast(Table, Activity.__table__)
_ACTORS = cast(Table, Actor.__table__)
# Built once and run on the DBAPI cursor on SQLite (db/fast.py; a fan-out prepares hundreds of
# batches): only the columns a delivery needs.
_BODIES = FastStatement(
    select(_ACTIVITIES.c.id, _ACTIVITIES.c.actor_id, _ACTIVITIES.c.raw).where(
        _ACTIVITIES.c.id.in_(bindparam("ids", expanding=True))
    )
)
_SIGNERS = FastStatement(
    select(_ACTORS.c.id, _ACTORS.c.uri, _ACTORS.c.key_id, _ACTORS.c.private_key_pem).where(
        _ACTORS.c.id.in_(bindparam("ids", expanding=True))
    )
)


def _prepare_all(
    connection: Connection, wanted: list[tuple[int, str]]
) -> list[_Prepared | Exception]:
    """For each (activity id, host): the activity, its signer, and whether the host is refused
    or unavailable. Four queries for the whole batch, whatever its size."""
    activities = {
        activity_id: (actor_id, raw)
        for activity_id, actor_id, raw in _BODIES.rows(
            connection, {"ids": sorted({activity for activity, _ in wanted})}
        )
    }
    signers = {
        row[0]: SigningActor(*row)
        for row in _SIGNERS.rows(
            connection, {"ids": sorted({actor_id for actor_id, _ in activities.values()})}
        )
    }
    bodies = {activity_id: raw.encode() for activity_id, (_, raw) in activities.items()}
    digests = {activity_id: make_digest(body) for activity_id, body in bodies.items()}
    hosts = {host for _, host in wanted}
    refused = domains.refusals(connection, hosts)
    unavailable = domains.unavailable_among(connection, hosts)
    prepared: list[_Prepared | Exception] = []
    for activity_id, host in wanted:
        found = activities.get(activity_id)
        if found is None:
            prepared.append(GiveUp("the activity no longer exists"))
            continue
        reason = refused[host]
        if reason is None and host in unavailable:
            reason = f"{host} failed on 7 distinct days and is marked unavailable"
        prepared.append(
            _Prepared(bodies[activity_id], digests[activity_id], signers[found[0]], reason)
        )
    return prepared


def _record_all(connection: Connection, answers: list[tuple[str, datetime, bool]]) -> list[None]:
    """Each (host, when, ok) into the domain's health: the successes in one upsert."""
    domains.successes_in(connection, [(host, now) for host, now, ok in answers if ok])
    failures = [(host, now) for host, now, ok in answers if not ok]
    if failures:
        # Counting failure days reads and updates the row: the ORM, in the batch's transaction
        # (the session joins it and leaves the commit to it).
        with Session(bind=connection) as session:
            for host, now in failures:
                domains.failure_in(session, host, now)
    return [None] * len(answers)


# Concurrent deliveries share their database steps (a fan-out runs hundreds at once): one
# before the POST, one after, each a single transaction for the whole batch (batching.py).
_prepare = GroupStep(_prepare_all)
_record = GroupStep(_record_all)


@job_handler("deliver")
async def deliver(ctx: Context, payload: dict[str, Any]) -> None:
    inbox = str(payload["inbox"])
    host = urlsplit(inbox).netloc.lower()
    prepared = await _prepare.run(ctx, (int(payload["activity"]), host))
    if prepared.refused:
        raise GiveUp(f"not delivered: {prepared.refused}")
    signer, body = prepared.signer, prepared.body
    status: int | None
    headers: Mapping[str, str]
    async with ctx.host_slot(host, PER_HOST_CONCURRENCY):
        try:
            async with asyncio.timeout(ctx.settings.fetch_timeout_seconds):
                answer = await ctx.poster.post(
                    inbox,
                    body,
                    auth_for(ctx, signer),
                    {
                        "Content-Type": ACTIVITY_JSON,
                        "Accept": ACTIVITY_JSON,
                        "Digest": prepared.digest,
                    },
                )
            status, headers = answer.status, answer.headers
        except AddressRefused as error:
            raise GiveUp(f"address refused: {error}") from None
        except (httpx.HTTPError, TimeoutError) as error:
            status, headers, reason = None, {}, f"{type(error).__name__}: {error}"
        else:
            reason = f"HTTP {status}"
    now = ctx.clock()
    outcome = delivery.classify(status, headers, now=now, attempt=_attempt(payload))
    await _record_health(ctx, host, now, ok=isinstance(outcome, delivery.Delivered | delivery.Gone))
    if isinstance(outcome, delivery.Delivered):
        return
    if isinstance(outcome, delivery.Gone):
        follower = payload.get("follower")
        if follower is not None:  # a personal inbox: that actor is gone; never a shared inbox
            async with ctx.sessions.begin() as session:
                await session.execute(delete(Follow).where(Follow.follower_id == follower))
        return
    if isinstance(outcome, delivery.Retry):
        raise RetryLater(outcome.at, f"{reason}: {outcome.reason}")
    raise GiveUp(f"{reason}: {outcome.reason}")


def _attempt(payload: dict[str, Any]) -> int:
    # The worker counts attempts on the job row; the payload does not know it. The queue passes
    # it in as `_attempt` (see worker.py); default to the first attempt.
    return int(payload.get("_attempt", 1))


async def _record_health(ctx: Context, host: str, now: datetime, *, ok: bool) -> None:
    await _record.run(ctx, (host, now, ok))
