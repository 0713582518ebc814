"""What an incoming request's signature is checked against, for the inbox and signed fetches."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from fediverse_stories.context import Context


def request_target(request: Request) -> str:
    """The request target as received: the path as sent (percent-encoding kept, as the signer
    signed it) and the query. Read from the ASGI scope: building `request.url` cost more than
    the rest of the check around it."""
    scope = request.scope
    raw_path: bytes | None = scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    query: bytes = scope.get("query_string", b"")
    return f"{path}?{query.decode('latin-1')}" if query else path


def verification_terms(ctx: Context, target: str) -> dict[str, Any]:
    """The keyword arguments of `activitypub.signatures.verify_request*`: behind a proxy,
    signatures cover the public host and URL (the base URL's), not the socket's."""
    settings = ctx.settings
    return {
        "clock": lambda: ctx.clock().timestamp(),
        "host_override": settings.host,
        "target_uri": settings.base_url + target,
        "scheme": settings.base_url.split(":", 1)[0],
    }
