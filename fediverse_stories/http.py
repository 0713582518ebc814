"""The process's outbound HTTP client: the guarded httpx client, sending through aiohttp.

`activitypub.fetch.GuardedTransport` vets every request (and so every redirect hop) and pins it
to the checked address; what actually connects is its inner transport. httpx's own transport
spent 1.5 to 2 ms of CPU per signed POST where aiohttp spends 0.16 ms, and a fan-out's
throughput follows the transport (BENCHMARKS.md, section 2), so the inner transport is
httpx-aiohttp's: the httpx API (auth, timeouts, streaming) is unchanged above it.
"""

from __future__ import annotations

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from activitypub.fetch import DEFAULT_LIMITS, make_guarded_client
from fediverse_stories.settings import Settings


class AiohttpInner(AiohttpTransport):
    """httpx-aiohttp's transport; aiohttp failures it leaves unmapped surface as httpx errors."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` (already pinned to a vetted address by the guard) through aiohttp."""
        try:
            return await super().handle_async_request(request)
        except aiohttp.ClientError as error:  # e.g. a malformed status line or header
            raise httpx.RemoteProtocolError(f"{type(error).__name__}: {error}") from error
        except TimeoutError as error:  # aiohttp's own timeouts, not one of ours around it
            raise httpx.TimeoutException(f"{type(error).__name__}: {error}") from error


def make_client(settings: Settings) -> httpx.AsyncClient:
    """The one guarded client a process builds and shares (Context.build)."""
    return make_guarded_client(
        allow_private=settings.allow_private_addresses, inner=AiohttpInner(limits=DEFAULT_LIMITS)
    )
