"""The moderation pages: held comments to approve or reject, shown comments to remove, and
reports from other servers to read and resolve.

Plain forms (no JavaScript), each CSRF-checked; only moderators and admins get past the door.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fediverse_stories.context import Context
from fediverse_stories.db.models import Account, Comment, CommentState, Story
from fediverse_stories.services import comments, reports
from fediverse_stories.services.errors import Forbidden, Invalid, NotFound
from fediverse_stories.web.current import current_account
from fediverse_stories.web.sessions import checked_form
from fediverse_stories.web.templating import render

PAGE = "/admin/comments"
RECENT_SHOWN = 50
FORM_LIMITS = {"max_files": 0, "max_fields": 3, "max_part_size": 4096}


class _SignIn(Exception):
    """Nobody is signed in: the answer is a redirect to the login form."""


async def _moderator(request: Request, session: AsyncSession) -> Account:
    account = await current_account(request, session)
    if account is None:
        raise _SignIn
    if not account.role.can_moderate:
        raise HTTPException(403, "Only moderators and admins can moderate comments.")
    return account


def _to_login(request: Request) -> Response:
    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


async def _recently_shown(session: AsyncSession) -> list[tuple[Comment, Story]]:
    """The latest shown comments in our own threads (the ones this instance may remove)."""
    rows = (
        await session.execute(
            select(Comment, Story)
            .join(Story, Story.id == Comment.story_id)
            .where(Comment.state == CommentState.VISIBLE, Story.local.is_(True))
            .order_by(Comment.published_at.desc(), Comment.id.desc())
            .limit(RECENT_SHOWN)
        )
    ).all()
    return [(comment, story) for comment, story in rows]


async def moderation_page(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    async with ctx.sessions() as session:
        try:
            await _moderator(request, session)
        except _SignIn:
            return _to_login(request)
        shown = await _recently_shown(session)
    held = await comments.pending(ctx)
    return render(request, "admin_comments.html", {"pending": held, "shown": shown})


def _action(
    act: Callable[[Context, str], Awaitable[Comment]],
) -> Callable[[Request], Awaitable[Response]]:
    """A POST that applies `act` to one comment, then goes back to the page (303)."""

    async def endpoint(request: Request) -> Response:
        ctx: Context = request.app.state.ctx
        await checked_form(request, FORM_LIMITS)
        async with ctx.sessions() as session:
            try:
                await _moderator(request, session)
            except _SignIn:
                return RedirectResponse(f"/login?next={PAGE}", status_code=303)
            comment = await session.get(Comment, request.path_params["comment_id"])
        if comment is None or comment.uri is None:
            raise HTTPException(404, "No such comment.")
        try:
            await act(ctx, comment.uri)
        except NotFound:
            raise HTTPException(404, "No such comment.") from None
        except Invalid as error:
            raise HTTPException(409, f"Nothing done: {error}.") from None
        except Forbidden as error:
            raise HTTPException(403, f"Nothing done: {error}.") from None
        return RedirectResponse(PAGE, status_code=303)

    return endpoint


async def _remove(ctx: Context, url: str) -> Comment:
    async with ctx.sessions() as session:
        state = (
            await session.execute(select(Comment.state).where(Comment.uri == url))
        ).scalar_one_or_none()
    if state in (CommentState.REMOVED, CommentState.DELETED):
        raise Invalid(f"the comment is already {state}")
    return await comments.remove(ctx, url)


REPORTS = "/admin/reports"


async def reports_page(request: Request) -> Response:
    """Reports from other servers: the open ones to read and resolve, the latest resolved."""
    ctx: Context = request.app.state.ctx
    async with ctx.sessions() as session:
        try:
            await _moderator(request, session)
        except _SignIn:
            return _to_login(request)
        waiting, resolved = await reports.for_moderators(session)
    return render(request, "admin_reports.html", {"waiting": waiting, "resolved": resolved})


async def resolve_report(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    await checked_form(request, FORM_LIMITS)
    async with ctx.sessions() as session:
        try:
            moderator = await _moderator(request, session)
        except _SignIn:
            return RedirectResponse(f"/login?next={REPORTS}", status_code=303)
    try:
        await reports.resolve(ctx, request.path_params["report_id"], moderator.username)
    except NotFound:
        raise HTTPException(404, "No such report.") from None
    except Invalid as error:
        raise HTTPException(409, f"Nothing done: {error}.") from None
    return RedirectResponse(REPORTS, status_code=303)


routes = [
    Route(PAGE, moderation_page, methods=["GET"]),
    Route(f"{PAGE}/{{comment_id:id}}/approve", _action(comments.approve), methods=["POST"]),
    Route(f"{PAGE}/{{comment_id:id}}/reject", _action(comments.reject), methods=["POST"]),
    Route(f"{PAGE}/{{comment_id:id}}/remove", _action(_remove), methods=["POST"]),
    Route(REPORTS, reports_page, methods=["GET"]),
    Route(f"{REPORTS}/{{report_id:id}}/resolve", resolve_report, methods=["POST"]),
]
