"""`/notifications`: what happened to the signed-in member's stories, comments and profile."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fediverse_stories.context import Context
from fediverse_stories.services import notifications
from fediverse_stories.web.current import current_account
from fediverse_stories.web.templating import render

PAGE = "/notifications"


async def notifications_page(request: Request) -> Response:
    """The latest notifications, those since the last visit marked new; the visit sees them."""
    ctx: Context = request.app.state.ctx
    async with ctx.sessions.begin() as session:
        account = await current_account(request, session)
        if account is None:
            return RedirectResponse(f"/login?next={PAGE}", status_code=303)
        found = await notifications.for_account(session, account)
        seen_at = account.notifications_seen_at
        # Every time is our clock's (arrival, not a peer's claim), so the visit's time is a
        # fair line between what was shown and what comes next.
        account.notifications_seen_at = ctx.clock()
    return render(
        request,
        "notifications.html",
        {
            "notifications": found,
            "seen_at": seen_at,
            "new": notifications.count_since(found, seen_at),
        },
    )


routes = [Route(PAGE, notifications_page, methods=["GET"])]
