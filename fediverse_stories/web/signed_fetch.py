"""Signed-fetch-only mode (FEDIVERSE_STORIES_SIGNED_FETCH_ONLY): ActivityStreams GETs must be
signed by a known actor, as Mastodon's authorized fetch does. The instance actor stays public,
since a peer needs our key before it can verify anything."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from activitypub.errors import ProtocolError
from activitypub.keys import PublicKey
from activitypub.signatures import verify_request
from fediverse_stories.context import Context
from fediverse_stories.services import domains
from fediverse_stories.services.remote_actors import host_of, key_for
from fediverse_stories.web.negotiation import activity_error
from fediverse_stories.web.verification import request_target, verification_terms

Endpoint = Callable[[Request], Awaitable[Response]]


async def signer_of(request: Request, ctx: Context) -> str | None:
    """The actor id that validly signed this GET, or None."""
    path = request_target(request)
    signer: dict[str, str] = {}

    async def resolver(key_id: str) -> PublicKey:
        async with ctx.sessions() as session:
            if await domains.is_refused(session, host_of(key_id)):
                raise ProtocolError("the signer's domain is refused")
        key, actor = await key_for(ctx, key_id)
        signer["uri"] = actor.uri
        return key

    try:
        await verify_request(
            "GET",
            path,
            request.headers.items(),
            b"",
            resolver,
            **verification_terms(ctx, path),
        )
    except ProtocolError:
        return None
    return signer.get("uri")


def signed_if_required(endpoint: Endpoint) -> Endpoint:
    """`endpoint`, refusing unsigned requests (401) when signed-fetch-only mode is on."""

    async def guarded(request: Request) -> Response:
        ctx: Context = request.app.state.ctx
        if ctx.settings.signed_fetch_only and await signer_of(request, ctx) is None:
            return activity_error(401, "this instance answers only signed requests")
        return await endpoint(request)

    guarded.__name__ = getattr(endpoint, "__name__", "guarded")
    return guarded
