"""Content negotiation: one URL answers HTML to browsers and ActivityStreams JSON to peers."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from activitypub import vocab

ACTIVITY_CONTENT_TYPE = f"{vocab.ACTIVITY_JSON}; charset=utf-8"
_AS_MEDIA_TYPES = frozenset({vocab.ACTIVITY_JSON, "application/ld+json"})

Endpoint = Callable[[Request], Awaitable[Response]]


def wants_activitystreams(request: Request) -> bool:
    """True when the Accept header names `application/activity+json` or `application/ld+json`.

    The ld+json profile is not required (peers omit it); a type refused with `q=0` does not
    count. Anything else, a browser's Accept included, gets HTML.
    """
    for part in request.headers.get("accept", "").split(","):
        media, *params = (piece.strip() for piece in part.split(";"))
        if media.lower() not in _AS_MEDIA_TYPES:
            continue
        if not any(_is_q_zero(param) for param in params):
            return True
    return False


def _is_q_zero(param: str) -> bool:
    name, _, value = param.partition("=")
    if name.strip().lower() != "q":
        return False
    try:
        return float(value.strip()) == 0
    except ValueError:
        return False


def add_vary_accept(response: Response) -> Response:
    vary = response.headers.get("vary")
    if vary is None:
        response.headers["vary"] = "Accept"
    elif "accept" not in {v.strip().lower() for v in vary.split(",")}:
        response.headers["vary"] = f"{vary}, Accept"
    return response


class ActivityResponse(Response):
    """An ActivityStreams JSON document, `application/activity+json; charset=utf-8`."""

    media_type = ACTIVITY_CONTENT_TYPE

    def __init__(
        self, content: Any, status_code: int = 200, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(content, status_code, {"vary": "Accept", **(headers or {})})

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def activity_error(status_code: int, reason: str) -> Response:
    """A refusal to an ActivityPub client: plain JSON with a short reason."""
    response = Response(
        json.dumps({"error": reason}),
        status_code=status_code,
        media_type="application/json",
    )
    return add_vary_accept(response)


def negotiated(html: Endpoint, activity: Endpoint) -> Endpoint:
    """One endpoint that calls `activity` for ActivityStreams clients and `html` otherwise.

    Both answers carry `Vary: Accept`, so no cache hands a browser's page to a peer.
    """

    async def endpoint(request: Request) -> Response:
        chosen = activity if wants_activitystreams(request) else html
        return add_vary_accept(await chosen(request))

    endpoint.__name__ = getattr(html, "__name__", "negotiated")
    return endpoint
