"""Follow, Accept, Reject, Undo and Block: the relationship activities."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from activitypub.vocab import id_of
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Follow, FollowState
from fediverse_stories.inbound.dispatch import Refused, handles
from fediverse_stories.inbound.interactions import undo_interaction
from fediverse_stories.services import follows
from fediverse_stories.services.remote_actors import actor_by_uri, fetch_actor


async def _local_target(ctx: Context, uri: str | None) -> Actor:
    async with ctx.sessions() as session:
        actor = await actor_by_uri(session, uri) if uri else None
    if actor is None or not actor.local or actor.type == "Application":
        raise Refused("the object is not one of our actors")
    return actor


@handles("Follow")
async def on_follow(ctx: Context, activity: dict[str, Any]) -> str:
    target = await _local_target(ctx, id_of(activity.get("object")))
    follower = await fetch_actor(ctx, activity["actor"])
    return await follows.incoming_follow(ctx, follower, target, activity)


async def _our_follow(ctx: Context, activity: dict[str, Any]) -> Follow:
    """The Follow we sent that an Accept/Reject answers: by its id, or by its fields."""
    sender = activity["actor"]
    obj = activity.get("object")
    follow_id = id_of(obj)
    async with ctx.sessions() as session:
        remote = await actor_by_uri(session, sender)
        if remote is None:
            raise Refused("we never followed this actor")
        query = select(Follow).where(Follow.followed_id == remote.id)
        rows = list((await session.execute(query)).scalars())
        for row in rows:
            if follow_id and row.activity_uri == follow_id:
                return row
        if isinstance(obj, dict) and id_of(obj.get("object")) == sender:
            follower = await actor_by_uri(session, id_of(obj.get("actor")) or "")
            for row in rows:
                if follower is not None and follower.local and row.follower_id == follower.id:
                    return row
    raise Refused("the Follow it answers is not one we sent to this actor")


@handles("Accept")
async def on_accept(ctx: Context, activity: dict[str, Any]) -> str:
    row = await _our_follow(ctx, activity)
    async with ctx.sessions.begin() as session:
        stored = await session.get(Follow, row.id)
        if stored is not None:
            stored.state = FollowState.ACCEPTED
    return "our follow was accepted"


@handles("Reject")
async def on_reject(ctx: Context, activity: dict[str, Any]) -> str:
    row = await _our_follow(ctx, activity)
    async with ctx.sessions.begin() as session:
        await session.execute(delete(Follow).where(Follow.id == row.id))
    return "our follow was rejected"


@handles("Undo")
async def on_undo(ctx: Context, activity: dict[str, Any]) -> str:
    undone = await undo_interaction(ctx, activity)
    if undone is not None:
        return undone
    obj = activity.get("object")
    kind = obj.get("type") if isinstance(obj, dict) else None
    undone_id = id_of(obj)
    sender = activity["actor"]
    async with ctx.sessions.begin() as session:
        remote = await actor_by_uri(session, sender)
        if remote is None:
            return "ignored: unknown actor"
        # Only the sender's own follows: by the Follow's id, or (embedded Follow) by its object.
        query = select(Follow).where(Follow.follower_id == remote.id)
        candidates = list((await session.execute(query)).scalars())
        target_uri = id_of(obj.get("object")) if isinstance(obj, dict) else None
        for row in candidates:
            followed = await session.get(Actor, row.followed_id)
            if row.activity_uri == undone_id or (
                kind == "Follow" and followed is not None and followed.uri == target_uri
            ):
                await session.delete(row)
                return "follow undone"
    return "ignored: nothing of the sender's to undo"


@handles("Block")
async def on_block(ctx: Context, activity: dict[str, Any]) -> str:
    target = await _local_target(ctx, id_of(activity.get("object")))
    async with ctx.sessions.begin() as session:
        remote = await actor_by_uri(session, activity["actor"])
        if remote is None:
            return "ignored: unknown actor"
        remote.blocks_us = True
        await session.execute(
            delete(Follow).where(
                ((Follow.follower_id == remote.id) & (Follow.followed_id == target.id))
                | ((Follow.follower_id == target.id) & (Follow.followed_id == remote.id))
            )
        )
    return "blocked: follows between us removed"
