"""Bringing an instance to life: schema, secret, organisation and instance actors, admin."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from fediverse_stories.context import Context
from fediverse_stories.db.migrate import migrate
from fediverse_stories.db.models import InstanceValue, Role
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.actors import (
    INSTANCE_ACTOR_USERNAME,
    create_local_actor,
    local_actor,
)
from fediverse_stories.services.passwords import generate_password

SECRET_KEY = "secret_key"  # noqa: S105 - the name of the row, not a secret
ADMIN_CREATED = "admin_created"


@dataclass(frozen=True)
class InitResult:
    migrated: bool
    admin_password: str | None  # set only the first time, when the admin account is made


async def get_value(session: AsyncSession, key: str) -> str | None:
    row = await session.get(InstanceValue, key)
    return row.value if row is not None else None


async def initialise(ctx: Context, *, create_admin: bool = True) -> InitResult:
    """Migrate, then create whatever is missing. Idempotent; safe from several processes."""
    migrated = await migrate(ctx.engine)
    admin_password: str | None = None
    async with ctx.sessions.begin() as session:
        if await get_value(session, SECRET_KEY) is None:
            session.add(InstanceValue(key=SECRET_KEY, value=secrets.token_urlsafe(48)))
        if await local_actor(session, ctx, INSTANCE_ACTOR_USERNAME) is None:
            await create_local_actor(
                session,
                ctx,
                INSTANCE_ACTOR_USERNAME,
                actor_type="Application",
                display_name=ctx.settings.host,
                manually_approves_followers=True,
                uri=ctx.settings.url("/actor"),
            )
        if await local_actor(session, ctx, ctx.settings.org_handle) is None:
            await create_local_actor(
                session,
                ctx,
                ctx.settings.org_handle,
                actor_type="Organization",
                display_name=ctx.settings.org_name,
            )
        if create_admin and await get_value(session, ADMIN_CREATED) is None:
            admin_password = generate_password()
            await create_account(session, ctx, "admin", admin_password, role=Role.ADMIN)
            session.add(InstanceValue(key=ADMIN_CREATED, value=ctx.clock().isoformat()))
    await load_secret(ctx)
    return InitResult(migrated=migrated, admin_password=admin_password)


async def load_secret(ctx: Context) -> None:
    """The session/CSRF secret: the setting if given, else the one generated into the database."""
    if ctx.settings.secret_key:
        ctx.secret_key = ctx.settings.secret_key
        return
    async with ctx.sessions() as session:
        value = await get_value(session, SECRET_KEY)
    if value is None:
        raise RuntimeError("the instance is not initialised: run `fediverse-stories init`")
    ctx.secret_key = value
