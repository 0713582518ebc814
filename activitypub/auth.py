"""Signing outgoing requests inside httpx: `HttpSignatureAuth`.

Pass an instance as `auth=` to a request (or a client) and every request it sends carries a
Date, its Host, a digest of its body and an HTTP signature (Cavage draft by default, what
Mastodon verifies; RFC 9421 on request). With `sign_async`, the private-key operation is
awaited instead of run in place (e.g. in a pool of processes, so a fan-out's signing uses
every core); the headers are built here either way.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Generator, Sequence

import httpx

from .keys import PrivateKey
from .sigcore import Clock, Unsigned
from .signatures import Mode, unsigned_request_headers

# (algorithm, bytes to sign) -> the signature, made with the auth's key wherever it lives.
AsyncSign = Callable[[str, bytes], Awaitable[bytes]]


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
        sign_async: AsyncSign | None = None,
    ) -> None:
        self.key_id = key_id
        self.private_key = private_key
        self.mode: Mode = mode
        self.clock = clock
        self.covered = covered
        self.sign_async = sign_async

    def sign(self, request: httpx.Request) -> None:
        """Add the signature headers to a request whose body has been read."""
        _set(request, self.unsigned(request).sign_with(self.private_key))

    def unsigned(self, request: httpx.Request) -> Unsigned[dict[str, str]]:
        """The request's signature headers, waiting for the private-key operation."""
        headers = request.headers
        if "host" not in headers:
            # httpx sets Host from the URL when it builds a request; this is the rare case it
            # was removed. Sign exactly what will be sent: the netloc, port kept if non-default.
            headers["Host"] = request.url.netloc.decode("ascii")
        return unsigned_request_headers(
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

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Sign the request, then send it once."""
        self.sign(request)
        yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Sign the request (awaiting `sign_async` if there is one), then send it once."""
        await request.aread()
        _set(request, await self._finish(self.unsigned(request)))
        yield request

    async def headers_for(
        self, method: str, url: str, headers: Sequence[tuple[str, str]], body: bytes
    ) -> dict[str, str]:
        """The headers that sign a request built without httpx (Host, Date, digest, signature),
        for senders that skip httpx's request layer (a fan-out's deliveries)."""
        unsigned = unsigned_request_headers(
            method,
            url,
            headers,
            body,
            key_id=self.key_id,
            private_key=self.private_key,
            mode=self.mode,
            clock=self.clock,
            covered=self.covered,
        )
        return await self._finish(unsigned)

    async def _finish(self, unsigned: Unsigned[dict[str, str]]) -> dict[str, str]:
        if self.sign_async is None:
            return unsigned.sign_with(self.private_key)
        return unsigned.finish(await self.sign_async(unsigned.algorithm, unsigned.data))


def _set(request: httpx.Request, added: dict[str, str]) -> None:
    for name, value in added.items():
        request.headers[name] = value
