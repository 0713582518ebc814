"""Comments on the web: the story page's form, comment URLs, and the `replies`/`context`
collections (Mastodon-style paging; FEP-7888 `context`) that let anyone backfill a thread."""

from __future__ import annotations

from sqlalchemy import func, select
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fediverse_stories import convert
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Comment, CommentState, Story, Visibility
from fediverse_stories.services import comments, mentions
from fediverse_stories.services.errors import Forbidden, Invalid, NotFound
from fediverse_stories.web.current import current_account
from fediverse_stories.web.negotiation import (
    ActivityResponse,
    activity_error,
    negotiated,
)
from fediverse_stories.web.sessions import checked_form
from fediverse_stories.web.signed_fetch import signed_if_required
from fediverse_stories.whole_numbers import whole_number

PAGE_SIZE = 20
FORM_LIMITS = {"max_files": 0, "max_fields": 5, "max_part_size": 64 * 1024}


async def post_comment(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    story_id = request.path_params["story_id"]
    form = await checked_form(request, FORM_LIMITS)
    text = form.get("content", "")
    parent = form.get("in_reply_to", "").strip()
    async with ctx.sessions() as session:
        account = await current_account(request, session)
    if account is None:
        return RedirectResponse(f"/login?next=/stories/{story_id}", status_code=303)
    try:
        comment = await comments.post_local(
            ctx,
            account.username,
            story_id,
            text,
            parent_id=whole_number(parent),
        )
    except NotFound as error:
        raise HTTPException(404, str(error)) from None
    except (Invalid, Forbidden) as error:
        raise HTTPException(400 if isinstance(error, Invalid) else 403, str(error)) from None
    async with ctx.sessions() as session:
        story = await session.get(Story, story_id)
    page = f"/stories/{story_id}" if story is None or story.local else f"/network/{story_id}"
    return RedirectResponse(f"{page}#comment-{comment.id}", status_code=303)


async def _local_comment(ctx: Context, comment_id: int) -> tuple[Comment, Story, Actor]:
    async with ctx.sessions() as session:
        comment = await session.get(Comment, comment_id)
        if comment is None or not comment.local:
            raise NotFound("no such comment")
        story = await session.get(Story, comment.story_id)
        author = await session.get(Actor, comment.author_id)
        assert story is not None and author is not None
        await session.refresh(story, ["author"])
    return comment, story, author


async def comment_json(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    try:
        comment, story, author = await _local_comment(ctx, request.path_params["comment_id"])
    except NotFound:
        return activity_error(404, "no such comment")
    if comment.state in (CommentState.DELETED, CommentState.REMOVED):
        tombstone = {"id": comment.uri, "type": "Tombstone", "formerType": "Note"}
        return ActivityResponse(convert.with_context(tombstone, convert.OBJECT_CONTEXT), 410)
    if comment.state != CommentState.VISIBLE:
        return activity_error(404, "no such comment")
    async with ctx.sessions() as session:
        answered = await comments.answered_by(session, story, comment)
        mentioned = await mentions.of_comment(session, comment.id)
    note = comments.comment_to_note(ctx, comment, story, author, answered, mentioned)
    return ActivityResponse(convert.with_context(note, convert.OBJECT_CONTEXT))


async def comment_html(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    try:
        comment, story, _ = await _local_comment(ctx, request.path_params["comment_id"])
    except NotFound:
        raise HTTPException(404, "No such comment.") from None
    return RedirectResponse(f"/stories/{story.id}#comment-{comment.id}", status_code=303)


async def _thread_story(ctx: Context, story_id: int) -> Story | None:
    async with ctx.sessions() as session:
        story = await session.get(Story, story_id)
    if story is None or not story.local or story.deleted_at is not None:
        return None
    if story.visibility == Visibility.FOLLOWERS:
        return None
    return story


def _page(request: Request) -> int | None:
    raw = request.query_params.get("page")
    if raw is None:
        return None
    number = whole_number(raw, most=100_000)
    if number is None:
        raise HTTPException(400, "page must be a whole number from 1")
    return number


async def thread_collection(request: Request) -> Response:
    """`/stories/ID/replies` (direct replies) or `/stories/ID/context` (the whole thread)."""
    ctx: Context = request.app.state.ctx
    story = await _thread_story(ctx, request.path_params["story_id"])
    if story is None:
        return activity_error(404, "no such story")
    whole_thread = request.url.path.endswith("/context")
    collection_id = f"{story.uri}/{'context' if whole_thread else 'replies'}"
    where = [Comment.story_id == story.id, Comment.state == CommentState.VISIBLE]
    if not whole_thread:
        where.append(Comment.parent_id.is_(None))
    page = _page(request)
    async with ctx.sessions() as session:
        total = int(
            (
                await session.execute(select(func.count()).select_from(Comment).where(*where))
            ).scalar_one()
        )
        if page is None:
            document = convert.ordered_collection(collection_id, total)
            if whole_thread:
                document["attributedTo"] = story.author.uri if story.author else None
            return ActivityResponse(document)
        uris = list(
            (
                await session.execute(
                    select(Comment.uri)
                    .where(*where)
                    .order_by(Comment.published_at, Comment.id)
                    .offset((page - 1) * PAGE_SIZE)
                    .limit(PAGE_SIZE)
                )
            ).scalars()
        )
    return ActivityResponse(
        convert.ordered_collection_page(collection_id, page, uris, total=total, page_size=PAGE_SIZE)
    )


routes = [
    Route("/stories/{story_id:id}/comments", post_comment, methods=["POST"]),
    Route(
        "/comments/{comment_id:id}",
        negotiated(comment_html, signed_if_required(comment_json)),
        methods=["GET"],
    ),
    Route("/stories/{story_id:id}/replies", signed_if_required(thread_collection), methods=["GET"]),
    Route("/stories/{story_id:id}/context", signed_if_required(thread_collection), methods=["GET"]),
]
