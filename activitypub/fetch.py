"""Guarded fetching of remote documents: no private addresses, bounded in size and time.

The guard lives in the transport, not in the helpers: `GuardedTransport` resolves each request's
host itself, refuses the request if any answer is not a global address, and then connects to the
vetted IP (the URL host rewritten to it, `Host` and TLS SNI kept), so a second DNS answer can
never differ from the checked one (no DNS rebinding). Every redirect hop is a new request through
the same transport, so it is checked again. `make_guarded_client` is the one place a client is
built; the fetch helpers take that client as an argument.

    client = make_guarded_client(allow_private=settings.allow_private_addresses)
    actor = await fetch_object(client, "https://example.org/users/alice", auth=signer)
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from . import vocab
from .addresses import IPAddress, ip_literal, is_global_address
from .errors import (
    AddressRefused,
    CrossOriginRedirect,
    FetchContentTypeError,
    FetchError,
    FetchIdMismatch,
    FetchStatusError,
    FetchTimeout,
    FetchTooLarge,
    TooManyRedirects,
)

Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]
Classifier = Callable[[IPAddress], bool]
ContentTypeCheck = Callable[[str | None], bool]

ACCEPT_ACTIVITY = f"{vocab.ACTIVITY_JSON}, {vocab.LD_JSON_AS}"
ACCEPT_JSON = f"{vocab.JRD_JSON}, application/json"
DEFAULT_MAX_BYTES = 1 << 20
DEFAULT_DEADLINE = 20.0
MAX_REDIRECTS = 3
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0, pool=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DEFAULT_PORTS = {"http": 80, "https": 443}


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """Every address the system resolver gives for `host`, in its order, without duplicates."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpx.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
    found: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in found:
            found.append(address)
    return found


class GuardedTransport(httpx.AsyncBaseTransport):
    """A transport that connects only to vetted global addresses, checked at connect time.

    `inner` does the actual connecting (default `httpx.AsyncHTTPTransport`); it only ever sees a
    URL whose host is the vetted IP literal, which is what lets a test pass a recording transport
    and prove where a connection would have gone. `resolver` and `classifier` are injectable for
    the same reason. With `allow_private=True` (the operator setting
    FEDIVERSE_STORIES_ALLOW_PRIVATE_ADDRESSES) every address is allowed, for local federation.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport | None = None,
        *,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        classifier: Classifier | None = None,
        limits: httpx.Limits = DEFAULT_LIMITS,
    ) -> None:
        self._inner = inner if inner is not None else httpx.AsyncHTTPTransport(limits=limits)
        self._allow_private = allow_private
        self._resolver = resolver if resolver is not None else system_resolver
        self._classifier = classifier if classifier is not None else is_global_address

    async def vet(self, url: httpx.URL) -> IPAddress:
        """The one address a request to `url` may connect to; AddressRefused if there is none."""
        return await self.vet_host(url.scheme, url.raw_host.decode("ascii"), url.port)

    async def vet_host(self, scheme: str, host: str, port: int | None) -> IPAddress:
        """`vet` for a URL already split: `host` in ASCII as `httpx.URL.raw_host` gives it
        (lower case, IDNA-encoded, no brackets), `port` None for the scheme's default."""
        if scheme not in _DEFAULT_PORTS:
            raise AddressRefused(f"scheme {scheme!r} is not http or https")
        if not host:
            raise AddressRefused("URL has no host")
        port = port if port is not None else _DEFAULT_PORTS[scheme]
        literal = ip_literal(host)
        answers = [literal] if literal is not None else await self._resolver(host, port)
        if not answers:
            raise httpx.ConnectError(f"no address for {host!r}")
        if not self._allow_private:
            # Any bad answer refuses the whole name: otherwise a retry or a happy-eyeballs
            # fallback could still land on it.
            for address in answers:
                if not self._classifier(address):
                    raise AddressRefused(f"{host!r} resolves to non-global address {address}")
        return answers[0]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Vet the request's host, then hand the request, pinned to the vetted IP, to `inner`."""
        address = await self.vet(request.url)
        host = request.url.raw_host.decode("ascii")
        extensions = dict(request.extensions)
        if request.url.scheme == "https" and ip_literal(host) is None:
            extensions["sni_hostname"] = host
        # The Host header was set from the original URL when the request was built, so the
        # server still sees the name; only the socket goes to the address we checked.
        pinned = httpx.Request(
            request.method,
            request.url.copy_with(host=str(address)),
            headers=request.headers,
            stream=request.stream,
            extensions=extensions,
        )
        return await self._inner.handle_async_request(pinned)

    async def aclose(self) -> None:
        """Close the inner transport and its pooled connections."""
        await self._inner.aclose()


def make_guarded_client(
    *,
    allow_private: bool,
    resolver: Resolver | None = None,
    classifier: Classifier | None = None,
    inner: httpx.AsyncBaseTransport | None = None,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
    user_agent: str = "fediverse-stories",
) -> httpx.AsyncClient:
    """The one guarded HTTP client a process builds and shares (`limits` apply to the default
    inner transport only)."""
    transport = GuardedTransport(
        inner, allow_private=allow_private, resolver=resolver, classifier=classifier, limits=limits
    )
    # trust_env=False: proxy variables would make httpx mount its own transports for them,
    # bypassing the guard. Redirects are followed by `fetch_raw`, hop by hop.
    return httpx.AsyncClient(
        transport=transport,
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        headers={"User-Agent": user_agent},
    )


@dataclass(frozen=True)
class FetchResult:
    """A bounded response body with the URL it finally came from."""

    url: str
    status: int
    headers: httpx.Headers
    content: bytes
    redirects: tuple[str, ...]

    @property
    def cross_origin(self) -> bool:
        """True if a redirect led to another scheme, host or port than the URL first asked for."""
        return bool(self.redirects) and not same_origin(self.redirects[0], self.url)


def same_origin(first: str, second: str) -> bool:
    """True if two URLs share scheme, host and port."""
    a, b = httpx.URL(first), httpx.URL(second)
    return (a.scheme, a.raw_host.lower(), a.port) == (b.scheme, b.raw_host.lower(), b.port)


def check_url(url: str) -> httpx.URL:
    """The parsed URL if it is fit to fetch: http or https, a host, and no userinfo."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise AddressRefused(f"invalid URL {url!r}: {exc}") from exc
    if parsed.scheme not in _DEFAULT_PORTS:
        raise AddressRefused(f"scheme of {url!r} is not http or https")
    if not parsed.raw_host:
        raise AddressRefused(f"{url!r} has no host")
    if parsed.userinfo:
        # `http://public.example@10.0.0.1/` reads as public.example to a human; refuse it.
        raise AddressRefused(f"{url!r} carries userinfo")
    return parsed


class _BoundedDecoder:
    """Decodes a Content-Encoding while counting, so a compression bomb stops at the cap."""

    def __init__(self, encoding: str, max_bytes: int) -> None:
        self._max = max_bytes
        self._total = 0
        self._raw = 0
        self._zlib: Any = None
        if encoding == "gzip":
            self._zlib = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._zlib = zlib.decompressobj()
        elif encoding not in ("", "identity"):
            raise FetchError(f"unsupported Content-Encoding {encoding!r}")
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._raw += len(data)
        if self._raw > self._max:
            raise FetchTooLarge(f"response exceeds {self._max} bytes")
        if self._zlib is None:
            self._take(data)
            return
        try:
            while data and not self._zlib.eof:
                # Never inflate more than one byte past the cap, whatever the ratio.
                out = self._zlib.decompress(data, self._max - self._total + 1)
                self._take(out)
                data = self._zlib.unconsumed_tail
        except zlib.error as exc:
            raise FetchError(f"cannot decode body: {exc}") from exc

    def _take(self, out: bytes) -> None:
        self._total += len(out)
        if self._total > self._max:
            raise FetchTooLarge(f"decoded response exceeds {self._max} bytes")
        self._chunks.append(out)

    def result(self) -> bytes:
        return b"".join(self._chunks)


async def _read_bounded(response: httpx.Response, max_bytes: int) -> bytes:
    encoding = response.headers.get("content-encoding", "").strip().lower()
    length = response.headers.get("content-length", "")
    if encoding in ("", "identity") and length.isdigit() and int(length) > max_bytes:
        raise FetchTooLarge(f"Content-Length {length} exceeds {max_bytes} bytes")
    decoder = _BoundedDecoder(encoding, max_bytes)
    if response.is_stream_consumed:
        # A response built in memory (httpx.MockTransport at a test's network edge) arrives
        # already read; its bytes are still bounded and decoded like a stream's.
        decoder.feed(response.content)
        return decoder.result()
    async for chunk in response.aiter_raw():
        decoder.feed(chunk)
    return decoder.result()


async def fetch_raw(
    client: httpx.AsyncClient,
    url: str,
    *,
    accept: str,
    content_type_ok: ContentTypeCheck,
    auth: httpx.Auth | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline: float = DEFAULT_DEADLINE,
    max_redirects: int = MAX_REDIRECTS,
    allow_cross_origin: bool = True,
) -> FetchResult:
    """GET `url` through `client`, following at most `max_redirects` redirects by hand.

    The whole exchange, body included, must finish within `deadline` seconds (FetchTimeout); the
    decoded body may not exceed `max_bytes` (FetchTooLarge); a non-2xx final status raises
    FetchStatusError and a content type `content_type_ok` refuses raises FetchContentTypeError,
    both before the body is read. A redirect to another origin raises CrossOriginRedirect unless
    `allow_cross_origin`.
    """
    headers = {"Accept": accept, "Accept-Encoding": "gzip, deflate"}
    current = url
    chain: list[str] = []
    try:
        async with asyncio.timeout(deadline):
            while True:
                request = client.build_request("GET", check_url(current), headers=headers)
                response = await client.send(request, auth=auth, stream=True)
                try:
                    location = response.headers.get("location")
                    if response.status_code in _REDIRECTS and location:
                        chain.append(current)
                        if len(chain) > max_redirects:
                            raise TooManyRedirects(
                                f"more than {max_redirects} redirects from {url}"
                            )
                        try:
                            current = str(httpx.URL(current).join(location))
                        except httpx.InvalidURL as exc:
                            raise FetchError(f"{current} redirected to {location!r}") from exc
                        if not allow_cross_origin and not same_origin(url, current):
                            raise CrossOriginRedirect(f"{url} redirected to {current}")
                        continue
                    if not 200 <= response.status_code < 300:
                        raise FetchStatusError(
                            f"{current} answered {response.status_code}", response.status_code
                        )
                    content_type = response.headers.get("content-type")
                    if not content_type_ok(content_type):
                        raise FetchContentTypeError(f"{current} answered {content_type!r}")
                    content = await _read_bounded(response, max_bytes)
                finally:
                    await response.aclose()
                return FetchResult(
                    url=current,
                    status=response.status_code,
                    headers=response.headers,
                    content=content,
                    redirects=tuple(chain),
                )
    except TimeoutError as exc:
        raise FetchTimeout(f"{url} took longer than {deadline}s") from exc
    except httpx.TimeoutException as exc:
        raise FetchTimeout(f"{url}: {exc!r}") from exc
    except httpx.HTTPError as exc:
        raise FetchError(f"{url}: {exc!r}") from exc


def _json_object(result: FetchResult) -> dict[str, Any]:
    try:
        document = json.loads(result.content)
    except ValueError as exc:
        raise FetchContentTypeError(f"{result.url} did not answer JSON") from exc
    if not isinstance(document, dict):
        raise FetchContentTypeError(f"{result.url} did not answer a JSON object")
    return document


def _media_type_in(allowed: frozenset[str]) -> ContentTypeCheck:
    def check(content_type: str | None) -> bool:
        if not content_type:
            return False
        return content_type.split(";")[0].strip().lower() in allowed

    return check


_JSON_TYPES = _media_type_in(frozenset({vocab.JRD_JSON, "application/json"}))


async def fetch_object(
    client: httpx.AsyncClient,
    url: str,
    *,
    auth: httpx.Auth | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline: float = DEFAULT_DEADLINE,
    allow_cross_origin: bool = False,
) -> dict[str, Any]:
    """Fetch an ActivityStreams document whose `id` is exactly the URL it finally came from.

    Only ActivityStreams content types are accepted. A redirect to another origin is refused
    unless `allow_cross_origin`; even then the document's id must be the final URL.
    """
    result = await fetch_raw(
        client,
        url,
        accept=ACCEPT_ACTIVITY,
        content_type_ok=vocab.media_type_is_activitystreams,
        auth=auth,
        max_bytes=max_bytes,
        deadline=deadline,
        allow_cross_origin=allow_cross_origin,
    )
    document = _json_object(result)
    if document.get("id") != result.url:
        raise FetchIdMismatch(f"{result.url} served a document with id {document.get('id')!r}")
    return document


async def fetch_json(
    client: httpx.AsyncClient,
    url: str,
    *,
    auth: httpx.Auth | None = None,
    accept: str = ACCEPT_JSON,
    max_bytes: int = DEFAULT_MAX_BYTES,
    deadline: float = DEFAULT_DEADLINE,
    allow_cross_origin: bool = True,
) -> dict[str, Any]:
    """Fetch a plain JSON object (WebFinger JRD, NodeInfo): `application/jrd+json` or `json`.

    Cross-origin redirects are allowed by default: a split-domain server answers WebFinger on
    its handle domain by redirecting to the host it runs on.
    """
    result = await fetch_raw(
        client,
        url,
        accept=accept,
        content_type_ok=_JSON_TYPES,
        auth=auth,
        max_bytes=max_bytes,
        deadline=deadline,
        allow_cross_origin=allow_cross_origin,
    )
    return _json_object(result)
