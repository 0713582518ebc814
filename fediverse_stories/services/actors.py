"""Local actors: the organisation, the instance actor and each account's Person, with key pairs."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor
from fediverse_stories.services.errors import Conflict, Invalid
from fediverse_stories.services.keypairs import new_key_pair
from fediverse_stories.settings import USERNAME_CHARS

INSTANCE_ACTOR_USERNAME = "instance.actor"
# Names that would collide with our URL space or impersonate the instance.
RESERVED_NAMES = frozenset({"instance", "actor", "inbox", "outbox", "relay", "system", "root"})


def check_username(name: str) -> str:
    """The account name as it will appear in handles; Invalid when not acceptable."""
    if not 0 < len(name) <= 30 or not set(name) <= USERNAME_CHARS:
        raise Invalid(f"invalid name {name!r}: use 1-30 of a-z, 0-9 and _")
    if name in RESERVED_NAMES:
        raise Invalid(f"the name {name!r} is reserved")
    return name


def actor_uri(ctx: Context, username: str) -> str:
    return ctx.settings.url(f"/users/{username}")


async def local_actor(session: AsyncSession, ctx: Context, username: str) -> Actor | None:
    return (
        await session.execute(
            select(Actor).where(
                Actor.local.is_(True), Actor.username == username, Actor.domain == ctx.settings.host
            )
        )
    ).scalar_one_or_none()


async def create_local_actor(
    session: AsyncSession,
    ctx: Context,
    username: str,
    *,
    actor_type: str = "Person",
    display_name: str = "",
    manually_approves_followers: bool = False,
    uri: str | None = None,
) -> Actor:
    """Create a local actor with a fresh RSA-2048 key pair; Conflict if the name is taken."""
    if await local_actor(session, ctx, username) is not None:
        raise Conflict(f"the name {username!r} is already taken")
    uri = uri or actor_uri(ctx, username)
    private_pem, public_pem = new_key_pair()
    actor = Actor(
        uri=uri,
        local=True,
        type=actor_type,
        username=username,
        domain=ctx.settings.host,
        display_name=display_name,
        summary="",
        url=uri,
        inbox_url=f"{uri}/inbox",
        shared_inbox_url=ctx.settings.url("/inbox"),
        outbox_url=f"{uri}/outbox",
        followers_url=f"{uri}/followers",
        key_id=f"{uri}#main-key",
        public_key_pem=public_pem,
        private_key_pem=private_pem,
        manually_approves_followers=manually_approves_followers,
        created_at=ctx.clock(),
    )
    session.add(actor)
    await session.flush()
    return actor
