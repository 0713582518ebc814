"""Actor documents and their collections: followers, following, outbox, featured.

`/users/NAME` and `/actor` answer ActivityStreams JSON to peers and HTML to browsers (the
profile page; the instance actor has none, so `/actor` sends browsers home). Collections are
paged Mastodon style: the collection gives `totalItems` and `first` (`?page=1`); each page is an
OrderedCollectionPage of PAGE_SIZE items, newest first, with `next`/`prev`. A page number that is
not a whole number from 1 to MAX_PAGE is 400; a page past the end is empty.

An actor that is suspended is 404, like one that does not exist: a suspension can be lifted,
and a 410 would tell peers to delete the account for good. `hide_followers` hides both sides of
the social graph (as Mastodon's single setting does): the collections then give only their
`totalItems`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql import Select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from fediverse_stories import convert
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Follow, FollowState, Story, Visibility
from fediverse_stories.services.actors import INSTANCE_ACTOR_USERNAME, actor_uri, local_actor
from fediverse_stories.web import pages
from fediverse_stories.web.negotiation import (
    ActivityResponse,
    activity_error,
    negotiated,
)
from fediverse_stories.web.signed_fetch import signed_if_required
from fediverse_stories.whole_numbers import whole_number

PAGE_SIZE = 20
MAX_PAGE = 100_000
# Stories readable by anyone: public, and unlisted (public but kept off listings, as Mastodon
# lists unlisted posts in outboxes too). Followers-only stories never appear.
OUTBOX_VISIBILITIES = (Visibility.PUBLIC, Visibility.UNLISTED)


class BadPage(Exception):
    """The `page` query parameter is not a page number."""


async def _person_or_org(session: AsyncSession, ctx: Context, request: Request) -> Actor | None:
    """The local actor `/users/{username}` names, unless it is suspended (or the instance actor,
    whose id is `/actor`)."""
    username = request.path_params["username"]
    actor = await local_actor(session, ctx, username)
    if actor is None or actor.suspended or actor.uri != actor_uri(ctx, username):
        return None
    return actor


async def _instance_actor(session: AsyncSession, ctx: Context, request: Request) -> Actor | None:
    actor = await local_actor(session, ctx, INSTANCE_ACTOR_USERNAME)
    return None if actor is None or actor.suspended else actor


ActorLookup = Callable[[AsyncSession, Context, Request], Awaitable[Actor | None]]


def _page_number(request: Request) -> int | None:
    raw = request.query_params.get("page")
    if raw is None:
        return None
    number = whole_number(raw, most=MAX_PAGE)
    if number is None:
        raise BadPage(f"page must be a whole number from 1 to {MAX_PAGE}")
    return number


# --------------------------------------------------------------------------------------------
# Actor documents
# --------------------------------------------------------------------------------------------


def _actor_document(lookup: ActorLookup) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        ctx: Context = request.app.state.ctx
        async with ctx.sessions() as session:
            actor = await lookup(session, ctx, request)
        if actor is None:
            return activity_error(404, "no such actor")
        return ActivityResponse(convert.actor_to_wire(ctx, actor))

    return endpoint


async def instance_actor_page(request: Request) -> Response:
    return RedirectResponse("/", status_code=302)


# --------------------------------------------------------------------------------------------
# Collections
# --------------------------------------------------------------------------------------------


def _followers_query(actor: Actor) -> Select[Any]:
    return (
        select(Actor.uri)
        .join(Follow, Follow.follower_id == Actor.id)
        .where(Follow.followed_id == actor.id, Follow.state == FollowState.ACCEPTED)
        .order_by(Follow.created_at.desc(), Follow.id.desc())
    )


def _following_query(actor: Actor) -> Select[Any]:
    return (
        select(Actor.uri)
        .join(Follow, Follow.followed_id == Actor.id)
        .where(Follow.follower_id == actor.id, Follow.state == FollowState.ACCEPTED)
        .order_by(Follow.created_at.desc(), Follow.id.desc())
    )


async def _count(session: AsyncSession, query: Select[Any]) -> int:
    total = await session.execute(select(func.count()).select_from(query.order_by(None).subquery()))
    return int(total.scalar_one())


def _graph_collection(
    lookup: ActorLookup,
    collection_url: Callable[[Actor], str],
    query: Callable[[Actor], Select[Any]],
) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        ctx: Context = request.app.state.ctx
        try:
            page = _page_number(request)
        except BadPage as error:
            return activity_error(400, str(error))
        async with ctx.sessions() as session:
            actor = await lookup(session, ctx, request)
            if actor is None:
                return activity_error(404, "no such actor")
            collection_id = collection_url(actor)
            total = await _count(session, query(actor))
            if actor.hide_followers:
                return ActivityResponse(
                    convert.ordered_collection(collection_id, total, paged=False)
                )
            if page is None:
                return ActivityResponse(convert.ordered_collection(collection_id, total))
            rows = await session.execute(
                query(actor).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
            )
            items = list(rows.scalars())
        return ActivityResponse(
            convert.ordered_collection_page(
                collection_id, page, items, total=total, page_size=PAGE_SIZE
            )
        )

    return endpoint


def _outbox_query(actor: Actor) -> Select[Any]:
    return (
        select(Story)
        .where(
            Story.author_id == actor.id,
            Story.local.is_(True),
            Story.deleted_at.is_(None),
            Story.visibility.in_(OUTBOX_VISIBILITIES),
        )
        .order_by(Story.published_at.desc(), Story.id.desc())
    )


def _outbox(lookup: ActorLookup) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        ctx: Context = request.app.state.ctx
        try:
            page = _page_number(request)
        except BadPage as error:
            return activity_error(400, str(error))
        async with ctx.sessions() as session:
            actor = await lookup(session, ctx, request)
            if actor is None:
                return activity_error(404, "no such actor")
            collection_id = convert.outbox_url(actor)
            total = await _count(session, _outbox_query(actor))
            if page is None:
                return ActivityResponse(convert.ordered_collection(collection_id, total))
            rows = await session.execute(
                _outbox_query(actor).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE)
            )
            items = [convert.story_to_create(ctx, story) for story in rows.unique().scalars()]
        return ActivityResponse(
            convert.ordered_collection_page(
                collection_id,
                page,
                items,
                total=total,
                page_size=PAGE_SIZE,
                context=convert.OBJECT_CONTEXT,
            )
        )

    return endpoint


async def featured(request: Request) -> Response:
    """Pinned stories: none yet, so an empty collection that still dereferences."""
    ctx: Context = request.app.state.ctx
    async with ctx.sessions() as session:
        actor = await _person_or_org(session, ctx, request)
    if actor is None:
        return activity_error(404, "no such actor")
    return ActivityResponse(convert.ordered_collection(convert.featured_url(actor), 0, items=[]))


routes = [
    Route(
        "/users/{username}",
        negotiated(pages.profile, signed_if_required(_actor_document(_person_or_org))),
        methods=["GET"],
    ),
    Route(
        "/actor",
        negotiated(instance_actor_page, _actor_document(_instance_actor)),
        methods=["GET"],
    ),
    Route(
        "/users/{username}/followers",
        signed_if_required(
            _graph_collection(_person_or_org, convert.followers_url, _followers_query)
        ),
        methods=["GET"],
    ),
    Route(
        "/users/{username}/following",
        signed_if_required(
            _graph_collection(_person_or_org, convert.following_url, _following_query)
        ),
        methods=["GET"],
    ),
    Route("/users/{username}/outbox", signed_if_required(_outbox(_person_or_org)), methods=["GET"]),
    Route("/users/{username}/featured", signed_if_required(featured), methods=["GET"]),
    Route("/actor/outbox", signed_if_required(_outbox(_instance_actor)), methods=["GET"]),
]
