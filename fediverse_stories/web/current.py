"""Who is signed in: the account behind the session cookie, if any."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from fediverse_stories.context import Context
from fediverse_stories.db.models import Account


async def current_account(request: Request, session: AsyncSession) -> Account | None:
    """The signed-in account, or None; a disabled or deleted account ends the session."""
    account_id = request.session.get("uid")
    if not isinstance(account_id, int):
        return None
    account = await session.get(Account, account_id)
    if (
        account is None
        or account.disabled
        or request.session.get("pw") != account.password_hash[-16:]
    ):
        # A password change signs out every other session.
        request.session.pop("uid", None)
        return None
    request.scope["account"] = account
    return account


async def signed_in(request: Request, ctx: Context) -> Account | None:
    """`current_account` in a session of its own, opened only when the cookie names an account.

    For the pages that read everything else in one step (`Context.in_one_hop`): a visitor who
    is not signed in costs them no database session at all.
    """
    if "uid" not in request.session:
        return None
    async with ctx.sessions() as session:
        return await current_account(request, session)
