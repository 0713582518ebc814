"""Create, Update and Delete of actors and of stories/posts from actors we follow (/network)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from activitypub.fetch import fetch_object
from activitypub.vocab import ACTOR_TYPES, as_list, id_of, primary_type
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Follow, FollowState, Story, Tombstone
from fediverse_stories.inbound.dispatch import RECEIVED, Refused, handles
from fediverse_stories.inbound.remote_posts import post_fields
from fediverse_stories.services import comments, follows, interactions
from fediverse_stories.services.remote_actors import actor_by_uri, fetch_actor, store_actor
from fediverse_stories.services.signing import instance_auth

POST_TYPES = frozenset({"Article", "Note", "Page"})


async def _followed_by_us(ctx: Context, actor: Actor) -> bool:
    async with ctx.sessions() as session:
        row = (
            await session.execute(
                select(Follow.id)
                .join(Actor, Actor.id == Follow.follower_id)
                .where(
                    Follow.followed_id == actor.id,
                    Follow.state == FollowState.ACCEPTED,
                    Actor.local.is_(True),
                )
                .limit(1)
            )
        ).scalar_one_or_none()
    return row is not None


async def _object(ctx: Context, activity: dict[str, Any]) -> dict[str, Any]:
    obj = activity.get("object")
    if isinstance(obj, dict):
        return obj
    object_id = id_of(obj)
    if object_id is None:
        raise Refused("no object")
    # A reference: fetch it from its own origin (id == URL, ActivityStreams type checked there).
    return await fetch_object(
        ctx.http,
        object_id,
        auth=await instance_auth(ctx),
        deadline=ctx.settings.fetch_timeout_seconds,
    )


async def _from_origin(ctx: Context, activity: dict[str, Any]) -> dict[str, Any]:
    object_id = id_of(activity.get("object"))
    if object_id is None or urlsplit(object_id).netloc != urlsplit(activity["actor"]).netloc:
        raise Refused("a forwarded object must live on its actor's host")
    obj = await fetch_object(
        ctx.http,
        object_id,
        auth=await instance_auth(ctx),
        deadline=ctx.settings.fetch_timeout_seconds,
    )
    if activity["actor"] not in [id_of(a) for a in as_list(obj.get("attributedTo"))]:
        raise Refused("the forwarded object is not attributed to the activity's actor")
    return obj


@handles("Create")
async def on_create(ctx: Context, activity: dict[str, Any]) -> str:
    received = RECEIVED.get()
    if received.signer_uri != activity["actor"]:
        # Forwarded by someone else (a thread's owner): trust only the object's own origin.
        obj = await _from_origin(ctx, activity)
    else:
        obj = await _object(ctx, activity)
    if primary_type(obj.get("type"), POST_TYPES) not in POST_TYPES:
        return f"ignored: Create of {obj.get('type')}"
    author = await fetch_actor(ctx, activity["actor"])
    if author.suspended:
        return "ignored: the author was deleted or suspended"
    object_id = str(obj.get("id"))
    async with ctx.sessions() as session:
        tombstone = await session.get(Tombstone, object_id)
        if tombstone is not None and tombstone.actor_uri in (None, activity["actor"]):
            return "ignored: already deleted"
        existing = (await session.execute(select(Story.id).where(Story.uri == object_id))).scalar()
    if existing is not None:
        return "ignored: already stored"
    if obj.get("inReplyTo"):
        return await comments.receive(
            ctx, received.raw, obj, author, signer_uri=received.signer_uri
        )
    if not await _followed_by_us(ctx, author):
        return "ignored: nobody here follows the author"
    fields = post_fields(obj)
    async with ctx.sessions.begin() as session:
        session.add(Story(local=False, author_id=author.id, **fields))
    return "stored for /network"


@handles("Update")
async def on_update(ctx: Context, activity: dict[str, Any]) -> str:
    obj = activity.get("object")
    if not isinstance(obj, dict):
        obj = await _object(ctx, activity)
    kind = primary_type(obj.get("type"), POST_TYPES | ACTOR_TYPES)
    if kind in ACTOR_TYPES:
        if obj.get("id") != activity["actor"]:
            raise Refused("an actor may only update itself")
        await store_actor(ctx, obj)  # the actor signed this request: its own word
        return "actor updated"
    if kind in POST_TYPES:
        async with ctx.sessions.begin() as session:
            story = (
                await session.execute(
                    select(Story).where(Story.uri == obj.get("id"), Story.local.is_(False))
                )
            ).scalar_one_or_none()
            if story is None:
                return await _update_before_create(ctx, activity, obj)
            author = await session.get(Actor, story.author_id)
            if author is None or author.uri != activity["actor"]:
                raise Refused("only the author may update it")
            fields = post_fields(obj)
            if (
                story.updated_at
                and fields.get("updated_at")
                and fields["updated_at"] <= story.updated_at
            ):
                return "ignored: not newer"
            for name, value in fields.items():
                setattr(story, name, value)
        return "post updated"
    return f"ignored: Update of {obj.get('type')}"


async def _update_before_create(ctx: Context, activity: dict[str, Any], obj: dict[str, Any]) -> str:
    """An Update that overtook its Create: it carries the whole object, so keep that version
    (the Create that follows is then already stored) when the post is one we would keep."""
    if obj.get("inReplyTo"):
        return "ignored: unknown reply"
    if activity["actor"] not in [id_of(a) for a in as_list(obj.get("attributedTo"))]:
        raise Refused("only the author may update it")
    author = await fetch_actor(ctx, activity["actor"])
    async with ctx.sessions() as session:
        tombstone = await session.get(Tombstone, str(obj.get("id")))
    if author.suspended or tombstone is not None:
        return "ignored: deleted"
    if not await _followed_by_us(ctx, author):
        return "ignored: nobody here follows the author"
    try:
        async with ctx.sessions.begin() as session:
            session.add(Story(local=False, author_id=author.id, **post_fields(obj)))
    except IntegrityError:
        return "ignored: stored meanwhile"
    return "post stored from an Update that arrived before its Create"


@handles("Delete")
async def on_delete(ctx: Context, activity: dict[str, Any]) -> str:
    object_id = id_of(activity.get("object"))
    sender = activity["actor"]
    async with ctx.sessions.begin() as session:
        if object_id == sender:
            actor = await actor_by_uri(session, sender)
            if actor is None:
                return "ignored: unknown actor"
            await follows.remove_all_of(session, actor.id)
            actor.suspended = True
            await interactions.withdraw_all_of(session, actor)
            await session.execute(
                update(Story)
                .where(Story.author_id == actor.id, Story.deleted_at.is_(None))
                .values(deleted_at=ctx.clock())
            )
            return "actor deleted: its follows, interactions and posts removed"
    if object_id is None:
        raise Refused("no object")
    if urlsplit(object_id).netloc != urlsplit(sender).netloc:
        removed = await comments.removal_by_thread_owner(ctx, sender, object_id)
        if removed is None:
            raise Refused("only the author, or the thread's owner, may delete it")
        return removed
    deleted_comment = await comments.deleted_by_author(ctx, sender, object_id)
    if deleted_comment is not None:
        return deleted_comment
    async with ctx.sessions.begin() as session:
        if await session.get(Tombstone, object_id) is None:
            session.add(Tombstone(uri=object_id, actor_uri=sender, deleted_at=ctx.clock()))
        story = (
            await session.execute(
                select(Story).where(Story.uri == object_id, Story.local.is_(False))
            )
        ).scalar_one_or_none()
        if story is not None:
            author = await session.get(Actor, story.author_id)
            if author is None or author.uri != sender:
                raise Refused("only the author may delete it")
            story.deleted_at = ctx.clock()
            return "post deleted"
    return "tombstone kept"
