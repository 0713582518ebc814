"""Signing outgoing requests inside httpx: `HttpSignatureAuth`.

Pass an instance as `auth=` to a request (or a client) and every request it sends carries a
Date, its Host, a digest of its body and an HTTP signature (Cavage draft by default, what
Mastodon verifies; RFC 9421 on request).
"""

from __future__ import annotations

import time
from collections.abc import Generator, Sequence

import httpx

from .keys import PrivateKey
from .sigcore import Clock
from .signatures import Mode, sign_request_headers


class HttpSignatureAuth(httpx.Auth):
    """An httpx.Auth that signs each request with one key."""

    # The digest covers the body, so httpx must read it before the flow runs.
    requires_request_body = True

    def __init__(
        self,
        key_id: str,
        private_key: PrivateKey,
        *,
        mode: Mode = "cavage",
        clock: Clock = time.time,
        covered: Sequence[str] | None = None,
    ) -> None:
        self.key_id = key_id
        self.private_key = private_key
        self.mode: Mode = mode
        self.clock = clock
        self.covered = covered

    def sign(self, request: httpx.Request) -> None:
        """Add the signature headers to a request whose body has been read."""
        headers = request.headers
        if "host" not in headers:
            # httpx sets Host from the URL when it builds a request; this is the rare case it
            # was removed. Sign exactly what will be sent: the netloc, port kept if non-default.
            headers["Host"] = request.url.netloc.decode("ascii")
        added = sign_request_headers(
            request.method,
            str(request.url),
            headers.multi_items(),
            request.content,
            key_id=self.key_id,
            private_key=self.private_key,
            mode=self.mode,
            clock=self.clock,
            covered=self.covered,
        )
        for name, value in added.items():
            headers[name] = value

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request, then send it once."""
        self.sign(request)
        yield request
