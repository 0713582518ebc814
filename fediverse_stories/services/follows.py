"""Follow relationships, both directions: requests, approval, removal, and our own follows."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from activitypub.errors import WebFingerError
from activitypub.webfinger import parse_acct, resolve_handle
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Follow, FollowState
from fediverse_stories.outbound import store as outbound
from fediverse_stories.services.actors import local_actor
from fediverse_stories.services.errors import Conflict, Invalid, NotFound
from fediverse_stories.services.remote_actors import actor_by_uri, fetch_actor
from fediverse_stories.services.signing import instance_auth


async def find_follow(session: AsyncSession, follower_id: int, followed_id: int) -> Follow | None:
    return (
        await session.execute(
            select(Follow).where(
                Follow.follower_id == follower_id, Follow.followed_id == followed_id
            )
        )
    ).scalar_one_or_none()


def follow_document(follower: Actor, followed: Actor, follow_id: str | None) -> dict[str, Any]:
    """The Follow as Accept/Reject embed it (Mastodon matches on its id, others on its fields)."""
    return {
        "id": follow_id,
        "type": "Follow",
        "actor": follower.uri,
        "object": followed.uri,
    }


async def incoming_follow(
    ctx: Context, follower: Actor, target: Actor, follow: dict[str, Any]
) -> str:
    """A remote Follow of a local actor: pending, or accepted with an Accept sent back."""
    async with ctx.sessions.begin() as session:
        row = await find_follow(session, follower.id, target.id)
        if row is None:
            row = Follow(
                follower_id=follower.id,
                followed_id=target.id,
                state=FollowState.PENDING,
                created_at=ctx.clock(),
            )
            session.add(row)
        row.activity_uri = follow["id"]
        if target.manually_approves_followers and row.state != FollowState.ACCEPTED:
            return "follow request waits for approval"
        row.state = FollowState.ACCEPTED
        await _answer(session, ctx, target, follower, row, "Accept")
        return "follow accepted"


async def _answer(
    session: AsyncSession, ctx: Context, target: Actor, follower: Actor, row: Follow, kind: str
) -> None:
    document = outbound.activity(
        ctx, kind, target, follow_document(follower, target, row.activity_uri), to=[follower.uri]
    )
    await outbound.send(session, ctx, target, document, [outbound.inbox_of(follower)])


async def resolve_remote(ctx: Context, handle_or_url: str) -> Actor:
    """A remote actor from `@user@host`, `user@host` or its id URL, fetched and cached."""
    text = handle_or_url.strip()
    if text.startswith(("https://", "http://")):
        uri = text
    else:
        try:
            parse_acct(text)
        except WebFingerError as error:
            raise Invalid(f"{text!r} is neither a handle nor a URL: {error}") from None
        scheme = "http" if ctx.settings.base_url.startswith("http://") else "https"
        uri = await resolve_handle(ctx.http, text, scheme=scheme, auth=await instance_auth(ctx))
    actor = await fetch_actor(ctx, uri)
    if actor.local:
        raise Invalid("that is a local account")
    return actor


async def _local(session: AsyncSession, ctx: Context, name: str) -> Actor:
    actor = await local_actor(session, ctx, name)
    if actor is None or actor.type == "Application":
        raise NotFound(f"no local account named {name!r}")
    return actor


async def follow(ctx: Context, local_name: str, handle_or_url: str) -> Follow:
    """A local actor asks to follow a remote one; the Follow is delivered by the worker."""
    remote = await resolve_remote(ctx, handle_or_url)
    async with ctx.sessions.begin() as session:
        me = await _local(session, ctx, local_name)
        existing = await find_follow(session, me.id, remote.id)
        if existing is not None:
            raise Conflict(f"{local_name} already follows {remote.uri} ({existing.state.value})")
        document = outbound.activity(ctx, "Follow", me, remote.uri, to=[remote.uri])
        row = Follow(
            follower_id=me.id,
            followed_id=remote.id,
            state=FollowState.PENDING,
            activity_uri=document["id"],
            created_at=ctx.clock(),
        )
        session.add(row)
        await outbound.send(session, ctx, me, document, [outbound.inbox_of(remote)])
        return row


async def unfollow(ctx: Context, local_name: str, handle_or_url: str) -> None:
    remote = await resolve_remote(ctx, handle_or_url)
    async with ctx.sessions.begin() as session:
        me = await _local(session, ctx, local_name)
        row = await find_follow(session, me.id, remote.id)
        if row is None:
            raise NotFound(f"{local_name} does not follow {remote.uri}")
        undo = outbound.activity(
            ctx, "Undo", me, follow_document(me, remote, row.activity_uri), to=[remote.uri]
        )
        await session.delete(row)
        await outbound.send(session, ctx, me, undo, [outbound.inbox_of(remote)])


async def followers(ctx: Context, local_name: str) -> list[tuple[Actor, Follow]]:
    async with ctx.sessions() as session:
        me = await _local(session, ctx, local_name)
        rows = (
            await session.execute(
                select(Actor, Follow)
                .join(Follow, Follow.follower_id == Actor.id)
                .where(Follow.followed_id == me.id)
                .order_by(Follow.created_at)
            )
        ).all()
    return [(actor, row) for actor, row in rows]


async def _follower_row(
    session: AsyncSession, ctx: Context, local_name: str, handle_or_url: str
) -> tuple[Actor, Actor, Follow]:
    me = await _local(session, ctx, local_name)
    text = handle_or_url.strip()
    if text.startswith(("https://", "http://")):
        remote = await actor_by_uri(session, text)
    else:
        user, host = parse_acct(text)
        remote = (
            await session.execute(select(Actor).where(Actor.username == user, Actor.domain == host))
        ).scalar_one_or_none()
    row = await find_follow(session, remote.id, me.id) if remote is not None else None
    if remote is None or row is None:
        raise NotFound(f"{handle_or_url} does not follow {local_name}")
    return me, remote, row


async def approve(ctx: Context, local_name: str, handle_or_url: str) -> None:
    async with ctx.sessions.begin() as session:
        me, remote, row = await _follower_row(session, ctx, local_name, handle_or_url)
        if row.state == FollowState.ACCEPTED:
            raise Conflict(f"{handle_or_url} already follows {local_name}")
        row.state = FollowState.ACCEPTED
        await _answer(session, ctx, me, remote, row, "Accept")


async def reject(ctx: Context, local_name: str, handle_or_url: str) -> None:
    """Refuse a request or remove a follower: the row goes and a Reject tells their server."""
    async with ctx.sessions.begin() as session:
        me, remote, row = await _follower_row(session, ctx, local_name, handle_or_url)
        await _answer(session, ctx, me, remote, row, "Reject")
        await session.delete(row)


async def remove_all_of(session: AsyncSession, actor_id: int) -> None:
    """Every follow by or of an actor (it was deleted, or it blocked us)."""
    await session.execute(
        delete(Follow).where((Follow.follower_id == actor_id) | (Follow.followed_id == actor_id))
    )
