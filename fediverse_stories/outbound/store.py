"""Storing an outgoing activity (so its id dereferences) and expanding its audience into jobs."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from activitypub.vocab import AS_CONTEXT, PUBLIC, addresses
from fediverse_stories import queue
from fediverse_stories.context import Context
from fediverse_stories.db.models import Activity, Actor, Follow, FollowState
from fediverse_stories.wakeup import mark_queued


def new_activity_id(ctx: Context) -> str:
    return ctx.settings.url(f"/activities/{uuid.uuid4()}")


def activity(ctx: Context, kind: str, actor: Actor, obj: Any, **extra: Any) -> dict[str, Any]:
    """A new activity document with a fresh id on our host."""
    return {
        "@context": AS_CONTEXT,
        "id": new_activity_id(ctx),
        "type": kind,
        "actor": actor.uri,
        "object": obj,
        **extra,
    }


def store(session: AsyncSession, ctx: Context, actor: Actor, document: dict[str, Any]) -> Activity:
    """Keep the activity so `/activities/ID` answers it and deliveries can be retried from it."""
    row = Activity(
        uri=document["id"],
        actor_id=actor.id,
        type=document["type"],
        object_uri=_object_id(document.get("object")),
        raw=json.dumps(document),
        public=PUBLIC in addresses(document),
        created_at=ctx.clock(),
    )
    session.add(row)
    return row


def _object_id(obj: Any) -> str | None:
    if isinstance(obj, str):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("id"), str):
        return str(obj["id"])
    return None


async def follower_inboxes(session: AsyncSession, actor: Actor) -> list[tuple[str, int | None]]:
    """One (inbox, follower id) per distinct inbox of accepted remote followers, shared first.

    The follower id is set only for a personal inbox: a 410 from it means that actor is gone.
    """
    rows = (
        await session.execute(
            select(Actor.id, Actor.inbox_url, Actor.shared_inbox_url)
            .join(Follow, Follow.follower_id == Actor.id)
            .where(
                Follow.followed_id == actor.id,
                Follow.state == FollowState.ACCEPTED,
                Actor.local.is_(False),
                Actor.suspended.is_(False),
            )
        )
    ).all()
    shared = sorted({s for _, _, s in rows if s})
    personal = sorted({(i, fid) for fid, i, s in rows if not s and i})
    return [(inbox, None) for inbox in shared] + [(inbox, fid) for inbox, fid in personal]


async def enqueue_deliveries(
    session: AsyncSession,
    ctx: Context,
    row: Activity,
    targets: Iterable[tuple[str, int | None]],
) -> int:
    """One delivery job per distinct inbox, in the caller's transaction."""
    await session.flush()  # the activity row needs its id
    now = ctx.clock()
    jobs: dict[str, dict[str, Any]] = {}
    for inbox, follower_id in targets:
        if inbox not in jobs:
            jobs[inbox] = queue.new_job(
                now,
                "deliver",
                {"activity": row.id, "inbox": inbox, "follower": follower_id},
                host=urlsplit(inbox).netloc.lower(),
            )
    if jobs:
        # One executemany on the DBAPI cursor, not thousands of ORM objects: a story to 1,000
        # instances is 1,000 jobs (bench/fanout.py), and the publish waits for them.
        rows = list(jobs.values())
        await session.run_sync(lambda sync: queue.INSERT_JOB.many(sync.connection(), rows))
        mark_queued(session, ctx.wakeup)
    return len(jobs)


async def send(
    session: AsyncSession,
    ctx: Context,
    actor: Actor,
    document: dict[str, Any],
    targets: Iterable[tuple[str, int | None]],
) -> Activity:
    """Store an activity and queue its deliveries, all in the caller's transaction."""
    row = store(session, ctx, actor, document)
    await enqueue_deliveries(session, ctx, row, targets)
    return row


def inbox_of(actor: Actor) -> tuple[str, int | None]:
    assert actor.inbox_url is not None
    return actor.inbox_url, actor.id


def public_inbox_of(actor: Actor) -> tuple[str, int | None]:
    """Where a public activity for this actor goes: their server's shared inbox if it has one
    (as Mastodon's preferred_inbox_url), so a server that also hosts followers gets one copy."""
    if actor.shared_inbox_url:
        return actor.shared_inbox_url, None
    return inbox_of(actor)
