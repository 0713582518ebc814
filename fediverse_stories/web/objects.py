"""Our stories and activities as ActivityStreams JSON, at the same URLs that answer HTML."""

from __future__ import annotations

import json

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fediverse_stories import convert
from fediverse_stories.context import Context
from fediverse_stories.db.models import Activity, Actor, Follow, FollowState, Story, Visibility
from fediverse_stories.web import pages
from fediverse_stories.web.negotiation import ActivityResponse, activity_error, negotiated
from fediverse_stories.web.signed_fetch import signed_if_required, signer_of


async def story_json(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    story_id = request.path_params["story_id"]
    async with ctx.sessions() as session:
        story = await session.get(Story, story_id)
        if story is None or not story.local:
            return activity_error(404, "no such story")
        if story.deleted_at is not None:
            tombstone = {
                "id": story.uri,
                "type": "Tombstone",
                "formerType": "Article",
                "deleted": convert.iso8601(story.deleted_at),
            }
            return ActivityResponse(convert.with_context(tombstone, convert.OBJECT_CONTEXT), 410)
        if story.visibility == Visibility.FOLLOWERS and not await _signed_by_follower(
            request, ctx, story.author_id
        ):
            return activity_error(404, "no such story")
        await session.refresh(story, ["author", "tags"])
        article = convert.story_to_article(ctx, story)
    return ActivityResponse(convert.with_context(article, convert.OBJECT_CONTEXT))


async def _signed_by_follower(request: Request, ctx: Context, author_id: int) -> bool:
    """True for a validly signed GET from an actor whose follow of the author was accepted."""
    signer_uri = await signer_of(request, ctx)
    if signer_uri is None:
        return False
    async with ctx.sessions() as session:
        follow = (
            await session.execute(
                select(Follow.id)
                .join(Actor, Actor.id == Follow.follower_id)
                .where(
                    Actor.uri == signer_uri,
                    Follow.followed_id == author_id,
                    Follow.state == FollowState.ACCEPTED,
                )
            )
        ).scalar_one_or_none()
    return follow is not None


async def activity_json(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    uri = ctx.settings.url(request.url.path)
    async with ctx.sessions() as session:
        row = (
            await session.execute(select(Activity).where(Activity.uri == uri))
        ).scalar_one_or_none()
    if row is None or not row.public:
        return activity_error(404, "no such activity")
    return ActivityResponse(json.loads(row.raw))


async def story_create(request: Request) -> Response:
    """`/stories/ID/activity`: the Create that published the story."""
    ctx: Context = request.app.state.ctx
    async with ctx.sessions() as session:
        story = await session.get(Story, request.path_params["story_id"])
        if story is None or not story.local or story.deleted_at is not None:
            return activity_error(404, "no such activity")
        if story.visibility == Visibility.FOLLOWERS:
            return activity_error(404, "no such activity")
        await session.refresh(story, ["author", "tags"])
        create = convert.story_to_create(ctx, story)
    return ActivityResponse(convert.with_context(create, convert.OBJECT_CONTEXT))


routes = [
    Route(
        "/stories/{story_id:id}",
        negotiated(pages.story_page, signed_if_required(story_json)),
        methods=["GET"],
    ),
    Route("/stories/{story_id:id}/activity", signed_if_required(story_create), methods=["GET"]),
    Route("/activities/{activity_id}", signed_if_required(activity_json), methods=["GET"]),
]
