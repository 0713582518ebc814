"""Discovery: WebFinger (RFC 7033), host-meta (RFC 6415) and NodeInfo 2.0 / 2.1.

WebFinger finds every Person, the Organization, and the instance actor. The instance actor
answers to `acct:instance.actor@HOST` (its preferredUsername), to Mastodon's spelling
`acct:HOST@HOST` (given as an alias, so a round trip through either handle checks out), and to
the server's own URL (FEP-d556). The actor's id URL is accepted as the resource too.

A suspended actor is 404 here as on its actor document: a suspension can be lifted, and 410 tells
peers to delete the account for good.
"""

from __future__ import annotations

import importlib.metadata
import json
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from activitypub import vocab
from activitypub.errors import WebFingerError
from activitypub.webfinger import build_jrd, format_acct, normalise_host, parse_acct, self_link
from fediverse_stories import convert
from fediverse_stories.context import Context
from fediverse_stories.db.models import Account, Actor, Comment, CommentState, Story
from fediverse_stories.services.actors import INSTANCE_ACTOR_USERNAME, local_actor

PROFILE_PAGE_REL = "http://webfinger.net/rel/profile-page"
NODEINFO_SCHEMA = "http://nodeinfo.diaspora.software/ns/schema/{version}"
NODEINFO_VERSIONS = ("2.0", "2.1")
SOFTWARE_NAME = "fediverse-stories"
CORS = {"access-control-allow-origin": "*"}

MAX_RESOURCE = 1024
# Whitespace, controls and the characters that have no business in an actor URL we hand out.
_INJECTED_IN_URL = re.compile(r"[\s\x00-\x1f\x7f-\x9f\\<>\"'`{}|^]")
_USERS_PATH = re.compile(r"/users/([A-Za-z0-9_]{1,30})")


class BadResource(Exception):
    """The resource parameter is missing or malformed: 400 with this reason."""


def _json(document: Any, media_type: str, status_code: int = 200) -> Response:
    return Response(
        json.dumps(document, ensure_ascii=False),
        status_code=status_code,
        media_type=media_type,
        headers=CORS,
    )


def _error(status_code: int, reason: str) -> Response:
    return _json({"error": reason}, "application/json", status_code)


# --------------------------------------------------------------------------------------------
# WebFinger
# --------------------------------------------------------------------------------------------


def username_for_resource(ctx: Context, resource: str) -> str | None:
    """The local username a resource names; None when it is not ours or not an actor.

    BadResource when the resource is malformed or carries characters that do not belong.
    """
    if not resource:
        raise BadResource("the resource parameter is required")
    if len(resource) > MAX_RESOURCE:
        raise BadResource("the resource is too long")
    our_host = normalise_host(ctx.settings.host)
    if resource[:8].lower() == "https://" or resource[:7].lower() == "http://":
        return _username_for_url(ctx, resource, our_host)
    try:
        user, host = parse_acct(resource)
    except WebFingerError as error:
        raise BadResource(str(error)) from None
    if host != our_host:
        return None
    user = user.lower()
    if user in (INSTANCE_ACTOR_USERNAME, convert.host_name(ctx), our_host):
        return INSTANCE_ACTOR_USERNAME
    return user


def _username_for_url(ctx: Context, resource: str, our_host: str) -> str | None:
    if _INJECTED_IN_URL.search(resource):
        raise BadResource(f"invalid resource {resource!r}")
    parts = urlsplit(resource)
    if parts.query or parts.fragment or "@" in parts.netloc:
        raise BadResource(f"invalid resource {resource!r}")
    try:
        host = normalise_host(parts.netloc)
    except WebFingerError as error:
        raise BadResource(str(error)) from None
    if host != our_host:
        return None
    if parts.path in ("", "/", "/actor"):
        return INSTANCE_ACTOR_USERNAME
    match = _USERS_PATH.fullmatch(parts.path)
    return match.group(1).lower() if match else None


async def find_actor(session: AsyncSession, ctx: Context, username: str) -> Actor | None:
    """The local, unsuspended actor of that name (the instance actor by its own name)."""
    actor = await local_actor(session, ctx, username)
    if actor is None or actor.suspended:
        return None
    return actor


def actor_jrd(ctx: Context, actor: Actor) -> dict[str, Any]:
    subject = format_acct(actor.username, ctx.settings.host)
    profile = convert.profile_url(ctx, actor)
    aliases = [actor.uri] + ([profile] if profile != actor.uri else [])
    if convert.is_instance_actor(actor):
        # Mastodon names its instance actor after the domain: accept that handle too.
        aliases.append(format_acct(convert.host_name(ctx), ctx.settings.host))
    links = [
        {"rel": PROFILE_PAGE_REL, "type": "text/html", "href": profile},
        self_link(actor.uri),
    ]
    return build_jrd(subject, aliases, links)


async def webfinger(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    resource = request.query_params.get("resource", "")
    try:
        username = username_for_resource(ctx, resource)
    except BadResource as error:
        return _error(400, str(error))
    actor = None
    if username is not None:
        async with ctx.sessions() as session:
            actor = await find_actor(session, ctx, username)
    if actor is None:
        return _error(404, f"no such account: {resource}")
    document = actor_jrd(ctx, actor)
    rels = request.query_params.getlist("rel")
    if rels:  # RFC 7033 4.3: the client may ask for some link relations only
        document["links"] = [link for link in document["links"] if link["rel"] in rels]
    return _json(document, _jrd_media_type(request))


def _jrd_media_type(request: Request) -> str:
    """JRD's own type, unless the client asked only for plain JSON."""
    accept = request.headers.get("accept", "").lower()
    if "application/json" in accept and vocab.JRD_JSON not in accept:
        return "application/json; charset=utf-8"
    return f"{vocab.JRD_JSON}; charset=utf-8"


# --------------------------------------------------------------------------------------------
# host-meta
# --------------------------------------------------------------------------------------------


def _lrdd_template(ctx: Context) -> str:
    return ctx.settings.url("/.well-known/webfinger?resource={uri}")


async def host_meta(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    template = _lrdd_template(ctx).replace("&", "&amp;").replace('"', "&quot;")
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n'
        f'  <Link rel="lrdd" template="{template}"/>\n'
        "</XRD>\n"
    )
    return Response(body, media_type="application/xrd+xml; charset=utf-8", headers=CORS)


async def host_meta_json(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    return _json({"links": [{"rel": "lrdd", "template": _lrdd_template(ctx)}]}, vocab.JRD_JSON)


# --------------------------------------------------------------------------------------------
# NodeInfo
# --------------------------------------------------------------------------------------------


async def nodeinfo_index(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    links = [
        {
            "rel": NODEINFO_SCHEMA.format(version=version),
            "href": ctx.settings.url(f"/nodeinfo/{version}"),
        }
        for version in NODEINFO_VERSIONS
    ]
    return _json({"links": links}, "application/json; charset=utf-8")


def software_version() -> str:
    try:
        return importlib.metadata.version(SOFTWARE_NAME)
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0+unknown"


def _project_urls() -> dict[str, str]:
    """The package's Project-URL entries (`Homepage`, `Repository`), lower-cased labels."""
    try:
        entries = importlib.metadata.metadata(SOFTWARE_NAME).get_all("Project-URL") or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    urls = {}
    for entry in entries:
        label, _, url = entry.partition(",")
        urls[label.strip().lower()] = url.strip()
    return urls


ACTIVE_WINDOWS = {"activeMonth": timedelta(days=30), "activeHalfyear": timedelta(days=180)}


async def usage(session: AsyncSession, now: datetime) -> dict[str, Any]:
    """NodeInfo usage from the database.

    An account is active in a window when it signed in or published a story or a comment in
    it (sign-ins are what Mastodon counts; publishing counts too because authors may publish
    from the command line and stay signed in for months). Disabled accounts never count.
    localPosts counts local stories not deleted (any visibility) plus local visible comments;
    localComments the latter alone.
    """
    users = (await session.execute(select(func.count()).select_from(Account))).scalar_one()
    users_usage = {"total": users}
    for label, window in ACTIVE_WINDOWS.items():
        users_usage[label] = await _active_since(session, now - window)
    stories = (
        await session.execute(
            select(func.count())
            .select_from(Story)
            .where(Story.local.is_(True), Story.deleted_at.is_(None))
        )
    ).scalar_one()
    comments = (
        await session.execute(
            select(func.count())
            .select_from(Comment)
            .where(Comment.local.is_(True), Comment.state == CommentState.VISIBLE)
        )
    ).scalar_one()
    return {"users": users_usage, "localPosts": stories + comments, "localComments": comments}


async def _active_since(session: AsyncSession, since: datetime) -> int:
    wrote_a_story = select(Story.author_id).where(
        Story.local.is_(True), Story.published_at >= since
    )
    wrote_a_comment = select(Comment.author_id).where(
        Comment.local.is_(True), Comment.published_at >= since
    )
    active = (
        select(func.count())
        .select_from(Account)
        .where(
            Account.disabled.is_(False),
            or_(
                Account.last_signed_in_at >= since,
                Account.actor_id.in_(wrote_a_story),
                Account.actor_id.in_(wrote_a_comment),
            ),
        )
    )
    return (await session.execute(active)).scalar_one()


async def nodeinfo(request: Request) -> Response:
    ctx: Context = request.app.state.ctx
    version = request.path_params["version"]
    if version not in NODEINFO_VERSIONS:
        return _error(404, f"no NodeInfo version {version}")
    software: dict[str, str] = {"name": SOFTWARE_NAME, "version": software_version()}
    if version == "2.1":
        urls = _project_urls()
        for key, labels in (("repository", ("repository", "source")), ("homepage", ("homepage",))):
            found = next((urls[label] for label in labels if label in urls), None)
            if found:
                software[key] = found
    async with ctx.sessions() as session:
        counts = await usage(session, ctx.clock())
    document = {
        "version": version,
        "software": software,
        "protocols": ["activitypub"],
        "services": {"inbound": [], "outbound": []},
        "openRegistrations": False,
        "usage": counts,
        "metadata": {"nodeName": ctx.settings.org_name},
    }
    media_type = f'application/json; profile="{NODEINFO_SCHEMA.format(version=version)}#"'
    return _json(document, media_type)


routes = [
    Route("/.well-known/webfinger", webfinger, methods=["GET"]),
    Route("/.well-known/host-meta", host_meta, methods=["GET"]),
    Route("/.well-known/host-meta.json", host_meta_json, methods=["GET"]),
    Route("/.well-known/nodeinfo", nodeinfo_index, methods=["GET"]),
    Route("/nodeinfo/{version}", nodeinfo, methods=["GET"]),
]
