"""Likes and boosts (Announces) of the stories and comments we carry, and their counts.

Each interaction is one row per (actor, type, object): a repeated Like is a no-op. The cached
`like_count`/`share_count` on a story or comment is always recounted from those rows, with the
story or comment row locked first, so like/undo games and concurrent workers leave it right.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Comment, CommentState, Interaction, Story

LIKE = "Like"
ANNOUNCE = "Announce"
# The interaction type and the cached counter it keeps.
COUNTERS = {LIKE: "like_count", ANNOUNCE: "share_count"}

Target = Story | Comment


async def target_of(session: AsyncSession, object_uri: str, *, lock: bool = False) -> Target | None:
    """The story or shown comment at `object_uri` that can be liked or boosted here, or None.

    `lock` takes the row's lock (PostgreSQL) so the count written after it includes every
    interaction committed before: recounts serialise per object.
    """
    story_query = select(Story).where(Story.uri == object_uri, Story.deleted_at.is_(None))
    if lock:
        story_query = story_query.with_for_update(of=Story)  # not the eager-joined author
    story = (await session.execute(story_query)).scalar_one_or_none()
    if story is not None:
        return story
    comment_query = select(Comment).where(
        Comment.uri == object_uri, Comment.state == CommentState.VISIBLE
    )
    if lock:
        comment_query = comment_query.with_for_update(of=Comment)
    return (await session.execute(comment_query)).scalar_one_or_none()


async def count(session: AsyncSession, kind: str, object_uri: str) -> int:
    """How many distinct actors have `kind` (Like or Announce) on the object."""
    query = (
        select(func.count())
        .select_from(Interaction)
        .where(Interaction.type == kind, Interaction.object_uri == object_uri)
    )
    return int((await session.execute(query)).scalar_one())


async def recount(session: AsyncSession, target: Target, kind: str) -> int:
    """Write the object's cached counter for `kind` from the interaction rows."""
    assert target.uri is not None
    await session.flush()
    total = await count(session, kind, target.uri)
    setattr(target, COUNTERS[kind], total)
    return total


async def record(
    session: AsyncSession,
    ctx: Context,
    actor: Actor,
    kind: str,
    target: Target,
    activity_uri: str,
) -> bool:
    """Count `actor`'s `kind` of `target`; False when it was already counted (a no-op).

    Call it with `target` loaded by `target_of(..., lock=True)` in the same transaction.
    """
    assert target.uri is not None
    existing = (
        await session.execute(
            select(Interaction.id).where(
                (
                    (Interaction.actor_id == actor.id)
                    & (Interaction.type == kind)
                    & (Interaction.object_uri == target.uri)
                )
                | (Interaction.activity_uri == activity_uri)
            )
        )
    ).first()
    if existing is not None:
        return False
    # A concurrent duplicate (only possible without row locks) fails on the unique constraints
    # at flush: the caller's transaction rolls back and the activity counts as already seen.
    session.add(
        Interaction(
            actor_id=actor.id,
            type=kind,
            object_uri=target.uri,
            activity_uri=activity_uri,
            created_at=ctx.clock(),
        )
    )
    await recount(session, target, kind)
    return True


async def find(
    session: AsyncSession,
    actor: Actor,
    *,
    activity_uri: str | None,
    kind: str | None = None,
    object_uri: str | None = None,
) -> Interaction | None:
    """`actor`'s own interaction: by the activity's id, or by (type, object) for an embedded one."""
    if activity_uri is not None:
        row = (
            await session.execute(
                select(Interaction).where(
                    Interaction.actor_id == actor.id, Interaction.activity_uri == activity_uri
                )
            )
        ).scalar_one_or_none()
        if row is not None:
            return row
    if kind in COUNTERS and object_uri is not None:
        return (
            await session.execute(
                select(Interaction).where(
                    Interaction.actor_id == actor.id,
                    Interaction.type == kind,
                    Interaction.object_uri == object_uri,
                )
            )
        ).scalar_one_or_none()
    return None


async def withdraw(session: AsyncSession, row: Interaction) -> None:
    """Remove an interaction and recount its object (if we still carry it)."""
    kind, object_uri = row.type, row.object_uri
    target = await target_of(session, object_uri, lock=True)
    await session.execute(delete(Interaction).where(Interaction.id == row.id))
    if target is not None and kind in COUNTERS:
        await recount(session, target, kind)


def _collection(object_uri: str, name: str, total: int) -> dict[str, Any]:
    return {"id": f"{object_uri}/{name}", "type": "Collection", "totalItems": total}


def likes_collection(ctx: Context, object_uri: str, total: int) -> dict[str, Any]:
    """The `likes` property of a story or comment (a count, Mastodon style, no items)."""
    return _collection(object_uri, "likes", total)


def shares_collection(ctx: Context, object_uri: str, total: int) -> dict[str, Any]:
    """The `shares` property of a story or comment (a count, Mastodon style, no items)."""
    return _collection(object_uri, "shares", total)


def interaction_properties(ctx: Context, target: Target) -> dict[str, Any]:
    """`likes` and `shares` to merge into an Article or Note, from the cached counts."""
    assert target.uri is not None
    return {
        "likes": likes_collection(ctx, target.uri, target.like_count),
        "shares": shares_collection(ctx, target.uri, target.share_count),
    }


async def withdraw_all_of(session: AsyncSession, actor: Actor) -> None:
    """Every Like and Announce of an actor that is gone, with the counts they touched."""
    rows = list(
        (
            await session.execute(select(Interaction).where(Interaction.actor_id == actor.id))
        ).scalars()
    )
    for row in rows:
        await withdraw(session, row)
