"""Accounts: creating them, their passwords, and signing in."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fediverse_stories.context import Context
from fediverse_stories.db.models import Account, Role
from fediverse_stories.services import ratelimit
from fediverse_stories.services.actors import check_username, create_local_actor
from fediverse_stories.services.errors import Invalid, NotFound
from fediverse_stories.services.passwords import check_password, hash_password


def parse_role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        choices = ", ".join(r.value for r in Role)
        raise Invalid(f"unknown role {value!r}: choose one of {choices}") from None


async def get_account(session: AsyncSession, username: str) -> Account:
    account = (
        await session.execute(select(Account).where(Account.username == username))
    ).scalar_one_or_none()
    if account is None:
        raise NotFound(f"no account named {username!r}")
    return account


async def create_account(
    session: AsyncSession,
    ctx: Context,
    username: str,
    password: str,
    *,
    role: Role = Role.MEMBER,
    display_name: str = "",
    manual_approval: bool = False,
    hide_followers: bool = False,
) -> Account:
    """A new account and its Person actor, in the caller's transaction."""
    check_username(username)
    if len(display_name) > 200:
        raise Invalid("display name must be at most 200 characters")
    password_hash = hash_password(password)  # before any row, so a bad password writes nothing
    actor = await create_local_actor(
        session,
        ctx,
        username,
        display_name=display_name,
        manually_approves_followers=manual_approval,
    )
    actor.hide_followers = hide_followers
    account = Account(
        actor_id=actor.id,
        username=username,
        role=role,
        password_hash=password_hash,
        created_at=ctx.clock(),
    )
    account.actor = actor
    session.add(account)
    await session.flush()
    return account


async def set_password(session: AsyncSession, username: str, password: str) -> None:
    account = await get_account(session, username)
    account.password_hash = hash_password(password)


class LoginLimited(Exception):
    """Too many failed sign-ins for this account or address; retry after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many failed sign-in attempts")
        self.retry_after = retry_after


async def authenticate(
    session: AsyncSession, ctx: Context, username: str, password: str, address: str
) -> Account | None:
    """The account when the password is right; None when wrong; LoginLimited past the limits.

    Limits are checked before the password, so a limited attempt costs no hashing and reveals
    nothing. Only failures count.
    """
    settings, now = ctx.settings, ctx.clock()
    window = settings.login_window_seconds
    keys = [
        (f"login:account:{username.lower()[:100]}", settings.login_limit_per_account),
        (f"login:address:{address}", settings.login_limit_per_address),
    ]
    for key, limit in keys:
        if await ratelimit.is_limited(session, key, limit, window, now):
            raise LoginLimited(await ratelimit.seconds_left(session, key, window, now))
    account = (
        await session.execute(select(Account).where(Account.username == username))
    ).scalar_one_or_none()
    if (
        account is not None
        and not account.disabled
        and check_password(account.password_hash, password)
    ):
        account.last_signed_in_at = now
        return account
    for key, _limit in keys:
        await ratelimit.hit(session, key, window, now)
    return None
