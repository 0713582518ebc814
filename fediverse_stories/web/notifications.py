"""`/notifications`: what happened to the signed-in member's stories, comments and profile,
and the follow requests they may approve or reject there (plain CSRF-checked forms)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Follow, FollowState
from fediverse_stories.services import follows, notifications
from fediverse_stories.services.errors import Conflict, NotFound
from fediverse_stories.web.current import current_account
from fediverse_stories.web.sessions import checked_form
from fediverse_stories.web.templating import render

PAGE = "/notifications"
FORM_LIMITS = {"max_files": 0, "max_fields": 3, "max_part_size": 4096}


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


def _answer_request(
    answer: Callable[[Context, str, str], Awaitable[None]],
) -> Callable[[Request], Awaitable[Response]]:
    """A POST that approves or rejects one follow request of the signed-in member."""

    async def endpoint(request: Request) -> Response:
        ctx: Context = request.app.state.ctx
        await checked_form(request, FORM_LIMITS)
        async with ctx.sessions() as session:
            account = await current_account(request, session)
            if account is None:
                return RedirectResponse(f"/login?next={PAGE}", status_code=303)
            follow = await session.get(Follow, request.path_params["follow_id"])
            if follow is None or follow.followed_id != account.actor_id:
                raise HTTPException(404, "No such follow request.")
            if follow.state != FollowState.PENDING:
                raise HTTPException(409, "Nothing done: that follow request was answered already.")
            follower = await session.get(Actor, follow.follower_id)
            assert follower is not None
        try:
            await answer(ctx, account.username, follower.uri)
        except (NotFound, Conflict) as error:
            raise HTTPException(409, f"Nothing done: {error}.") from None
        return RedirectResponse(PAGE, status_code=303)

    return endpoint


routes = [
    Route(PAGE, notifications_page, methods=["GET"]),
    Route(
        f"{PAGE}/follow-requests/{{follow_id:id}}/approve",
        _answer_request(follows.approve),
        methods=["POST"],
    ),
    Route(
        f"{PAGE}/follow-requests/{{follow_id:id}}/reject",
        _answer_request(follows.reject),
        methods=["POST"],
    ),
]
