"""The process's outbound HTTP: the guarded httpx client, and signed POSTs for deliveries.

`activitypub.fetch.GuardedTransport` vets every request (and so every redirect hop) and pins it
to the checked address; what actually connects is its inner transport. httpx's own transport
spent 1.5 to 2 ms of CPU per signed POST where aiohttp spends 0.16 ms, and a fan-out's
throughput follows the transport (BENCHMARKS.md, section 2), so the inner transport is
httpx-aiohttp's: the httpx API (auth, timeouts, streaming) is unchanged above it.

Deliveries go one step further: `SignedPoster` sends them through the same guard and the same
aiohttp connection pool without httpx's request layer, which still cost about 0.2 ms of CPU a
POST (header and URL models built and converted several times over). A client passed in from
outside (tests routing to in-process apps) is used as it is, through httpx.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport
from yarl import URL

from activitypub.auth import HttpSignatureAuth
from activitypub.fetch import DEFAULT_LIMITS, GuardedTransport, make_guarded_client
from fediverse_stories.settings import Settings

USER_AGENT = "fediverse-stories"
# An inbox's answer is a status; its body is read (to keep the connection) up to this much.
MAX_ANSWER_BYTES = 64 * 1024


@contextlib.contextmanager
def httpx_errors() -> Iterator[None]:
    """aiohttp's failures raised as httpx's, so callers handle one family of errors."""
    try:
        yield
    except aiohttp.ClientConnectorError as error:
        raise httpx.ConnectError(f"{type(error).__name__}: {error}") from error
    except aiohttp.ClientError as error:  # e.g. a malformed status line or header
        raise httpx.RemoteProtocolError(f"{type(error).__name__}: {error}") from error
    except TimeoutError as error:  # aiohttp's own timeouts, not one of ours around it
        raise httpx.TimeoutException(f"{type(error).__name__}: {error}") from error


class AiohttpInner(AiohttpTransport):
    """httpx-aiohttp's transport; aiohttp failures it leaves unmapped surface as httpx errors."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` (already pinned to a vetted address by the guard) through aiohttp."""
        with httpx_errors():
            return await super().handle_async_request(request)

    def get_client(self) -> aiohttp.ClientSession:
        """httpx-aiohttp's session, minus the cookie jar: a federation client keeps no cookies
        from the servers it talks to (and the jar's bookkeeping ran on every request)."""
        connector = aiohttp.TCPConnector(
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
            limit=self.limits.max_connections or 100,  # aiohttp's own default when unset
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    def session(self) -> aiohttp.ClientSession:
        """The aiohttp session (and so the connection pool) this transport sends through."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        return self.client


@dataclass(frozen=True)
class Answer:
    """What a POST got back: its status and headers (read case-insensitively)."""

    status: int
    headers: Mapping[str, str]


class SignedPoster:
    """Signed POSTs of a body: straight through aiohttp behind the guard when the process's own
    client is built here, else through the httpx `client` given."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        direct: tuple[GuardedTransport, AiohttpInner] | None = None,
    ) -> None:
        self.client = client
        self.direct = direct

    async def post(
        self, url: str, body: bytes, auth: HttpSignatureAuth, headers: Mapping[str, str]
    ) -> Answer:
        """POST `body` to `url` signed by `auth`; AddressRefused for an address the guard
        refuses, httpx errors for a failed exchange."""
        if self.direct is None:
            through_httpx = await self.client.post(url, content=body, headers=headers, auth=auth)
            await through_httpx.aclose()
            return Answer(through_httpx.status_code, through_httpx.headers)
        guard, inner = self.direct
        parts = urlsplit(url)
        hostname = parts.hostname or ""
        if hostname.isascii():  # as httpx.URL would give it, without parsing the URL again
            address = await guard.vet_host(parts.scheme, hostname, parts.port)
        else:  # an internationalised name: httpx encodes it (IDNA) as its own requests do
            address = await guard.vet(httpx.URL(url))
        sent = {"User-Agent": USER_AGENT, **headers}
        sent.update(await auth.headers_for("POST", url, list(sent.items()), body))
        host = f"[{address}]" if address.version == 6 else str(address)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        target = parts.path or "/"
        if parts.query:
            target += f"?{parts.query}"
        # Pinned to the vetted address; Host (signed) and TLS SNI keep the name.
        pinned = URL(f"{parts.scheme}://{host}:{port}{target}", encoded=True)
        server_hostname = parts.hostname if parts.scheme == "https" else None
        with httpx_errors():
            async with inner.session().post(
                pinned,
                data=body,
                headers=sent,
                allow_redirects=False,
                auto_decompress=False,
                server_hostname=server_hostname,
            ) as response:
                await response.content.read(MAX_ANSWER_BYTES)
                return Answer(response.status, response.headers)


def make_client(settings: Settings) -> tuple[httpx.AsyncClient, SignedPoster]:
    """The one guarded client a process builds and shares (Context.build), and the poster that
    sends deliveries through the same guard and connections."""
    inner = AiohttpInner(limits=DEFAULT_LIMITS)
    guard = GuardedTransport(inner, allow_private=settings.allow_private_addresses)
    client = make_guarded_client(
        allow_private=settings.allow_private_addresses, inner=inner, user_agent=USER_AGENT
    )
    return client, SignedPoster(client, (guard, inner))
