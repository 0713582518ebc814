"""The public HTML pages: home, story, author profile, hashtags and search."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fediverse_stories.context import Context
from fediverse_stories.db import fulltext
from fediverse_stories.db.models import Visibility
from fediverse_stories.services import search, stories
from fediverse_stories.services.actors import local_actor
from fediverse_stories.services.stories import effective_policy
from fediverse_stories.services.story_view import read_story_page
from fediverse_stories.web.current import current_account, signed_in
from fediverse_stories.web.templating import render
from fediverse_stories.whole_numbers import whole_number


async def home(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    async with ctx.sessions() as session:
        await current_account(request, session)
        latest = await stories.latest_public(session, limit=30)
    return render(request, "home.html", {"stories": latest})


async def network(request: Request) -> Response:
    """`/network`: what the people our accounts follow have published (public posts only)."""
    ctx: Context = request.app.state.ctx
    async with ctx.sessions() as session:
        await current_account(request, session)
        posts = await stories.network_stories(session)
    return render(request, "network.html", {"posts": posts})


async def story_page(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    story_id = _int_param(request, "story_id")
    await signed_in(request, ctx)
    # The story, its author and tags and its thread in one step: on SQLite, read right on the
    # event loop (a hop to a thread per statement was most of the cost: bench/pages.py).
    story, comments = await ctx.on_connection(
        lambda connection: read_story_page(connection, story_id, local=True), inline=True
    )
    if story is None:
        raise HTTPException(404, "No such story.")
    if story.deleted_at is not None:
        return render(request, "gone.html", {}, status_code=410)
    if story.visibility == Visibility.FOLLOWERS:
        raise HTTPException(404, "No such story.")
    return render(
        request,
        "story.html",
        {"story": story, "comments": comments, "policy": effective_policy(ctx, story).value},
    )


async def network_story(request: Request) -> Response:
    """A story from the network with the thread its home instance forwarded to us."""
    ctx: Context = request.app.state.ctx
    story_id = _int_param(request, "story_id")
    await signed_in(request, ctx)
    story, comments = await ctx.on_connection(
        lambda connection: read_story_page(connection, story_id, local=False), inline=True
    )
    if story is None or story.deleted_at is not None:
        raise HTTPException(404, "No such story.")
    if story.visibility == Visibility.FOLLOWERS:
        raise HTTPException(404, "No such story.")
    return render(
        request,
        "story.html",
        {"story": story, "comments": comments, "policy": "open", "remote": True},
    )


async def profile(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    username = request.path_params["username"]
    async with ctx.sessions() as session:
        await current_account(request, session)
        actor = await local_actor(session, ctx, username)
        if actor is None or actor.type == "Application":
            raise HTTPException(404, "No such account.")
        written = await stories.by_author(session, actor.id)
    return render(request, "profile.html", {"actor": actor, "stories": written})


async def tag_page(request: Request) -> Response:
    """`/tags/NAME`: the stories here with that hashtag, then the network's (the `href` of every
    Hashtag our Articles carry)."""
    ctx: Context = request.app.state.ctx
    tag = request.path_params["tag"].lstrip("#")
    if not tag or len(tag) > stories.MAX_TAG:
        raise HTTPException(404, "No such tag.")
    async with ctx.sessions() as session:
        await current_account(request, session)
        here = await stories.tagged(session, tag, local=True)
        network = await stories.tagged(session, tag, local=False, limit=20)
    return render(request, "tag.html", {"tag": tag.lower(), "stories": here, "posts": network})


MAX_SEARCH_PAGE = 50


async def search_page(request: Request) -> Response:
    """`/search?q=WORDS`: public stories here and from the network with every word."""
    ctx: Context = request.app.state.ctx
    query = request.query_params.get("q", "")[: fulltext.MAX_QUERY]
    page = request.query_params.get("page", "1")
    number = whole_number(page, most=MAX_SEARCH_PAGE) or 1
    async with ctx.sessions() as session:
        await current_account(request, session)
        found = await search.stories(session, query, page=number)
    return render(request, "search.html", {"query": query, "found": found, "page": number})


def _int_param(request: Request, name: str) -> int:
    value = request.path_params[name]
    if not isinstance(value, int) or value <= 0 or value > 2**62:
        raise HTTPException(404, "Not found.")
    return value


routes = [
    Route("/", home, methods=["GET"]),
    Route("/network", network, methods=["GET"]),
    Route("/network/{story_id:id}", network_story, methods=["GET"]),
    Route("/stories/{story_id:id}", story_page, methods=["GET"]),
    Route("/users/{username}", profile, methods=["GET"]),
    Route("/tags/{tag}", tag_page, methods=["GET"]),
    Route("/search", search_page, methods=["GET"]),
]
