"""Our stories and activities as ActivityStreams JSON, at the same URLs that answer HTML."""

from __future__ import annotations

import json

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fediverse_stories import convert
from fediverse_stories.context import Context
from fediverse_stories.db.models import Activity, Story, Visibility
from fediverse_stories.web import pages
from fediverse_stories.web.negotiation import ActivityResponse, activity_error, negotiated


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
        if story.visibility == Visibility.FOLLOWERS:
            # Answered only to a signed GET by a follower (not yet supported): not found.
            return activity_error(404, "no such story")
        await session.refresh(story, ["author", "tags"])
        article = convert.story_to_article(ctx, story)
    return ActivityResponse(convert.with_context(article, convert.OBJECT_CONTEXT))


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
    Route("/stories/{story_id:int}", negotiated(pages.story_page, story_json), methods=["GET"]),
    Route("/stories/{story_id:int}/activity", story_create, methods=["GET"]),
    Route("/activities/{activity_id}", activity_json, methods=["GET"]),
]
