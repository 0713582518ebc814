"""Deliveries' signed POSTs straight through aiohttp, against a real server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from aiohttp import web

from activitypub.auth import HttpSignatureAuth
from activitypub.errors import AddressRefused
from activitypub.keys import generate_rsa
from activitypub.signatures import verify_request_with_key
from fediverse_stories.http import SignedPoster, make_client
from fediverse_stories.settings import Settings
from tests.support.servers import free_port

KEY = generate_rsa()
KEY_ID = "http://a.test/users/writer#main-key"
BODY = b'{"type": "Create", "id": "http://a.test/activities/1"}'
HEADERS = {"Content-Type": "application/activity+json", "Accept": "application/activity+json"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def serve(handler: Handler) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/inbox", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def poster() -> AsyncIterator[SignedPoster]:
    client, signed = make_client(Settings(allow_private_addresses=True))
    assert signed.direct is not None  # the process's own client: the aiohttp path
    try:
        yield signed
    finally:
        await client.aclose()


def auth() -> HttpSignatureAuth:
    return HttpSignatureAuth(KEY_ID, KEY)


async def test_a_delivery_arrives_signed_as_a_peer_checks_it(poster: SignedPoster) -> None:
    seen: list[tuple[web.Request, bytes]] = []

    async def inbox(request: web.Request) -> web.Response:
        seen.append((request, await request.read()))
        return web.Response(status=202)

    async for netloc in serve(inbox):
        answer = await poster.post(f"http://{netloc}/inbox?via=shared", BODY, auth(), HEADERS)
        assert answer.status == 202
    ((request, body),) = seen
    assert body == BODY
    assert request.headers["Host"] == netloc  # the name and port as addressed, as signed
    assert request.headers["User-Agent"] == "fediverse-stories"
    verified = verify_request_with_key(
        "POST", request.path_qs, list(request.headers.items()), body, KEY.public_key()
    )
    assert verified.key_id == KEY_ID
    assert "(request-target) host date digest content-type" in request.headers["Signature"]


async def test_an_answer_s_status_and_headers_reach_the_caller(poster: SignedPoster) -> None:
    async def busy(request: web.Request) -> web.Response:
        # A large body is read only up to a bound: the status is what matters.
        return web.Response(status=503, headers={"Retry-After": "120"}, body=b"x" * 300_000)

    async for netloc in serve(busy):
        answer = await poster.post(f"http://{netloc}/inbox", BODY, auth(), HEADERS)
    assert answer.status == 503
    assert answer.headers.get("retry-after") == "120"  # read case-insensitively


async def test_a_private_address_is_refused_before_any_connection() -> None:
    client, poster = make_client(Settings(allow_private_addresses=False))
    seen: list[web.Request] = []

    async def inbox(request: web.Request) -> web.Response:
        seen.append(request)
        return web.Response(status=202)

    try:
        async for netloc in serve(inbox):
            with pytest.raises(AddressRefused):
                await poster.post(f"http://{netloc}/inbox", BODY, auth(), HEADERS)
    finally:
        await client.aclose()
    assert seen == []


async def test_a_closed_port_is_an_httpx_connect_error(poster: SignedPoster) -> None:
    with pytest.raises(httpx.ConnectError):
        await poster.post(f"http://127.0.0.1:{free_port()}/inbox", BODY, auth(), HEADERS)


async def test_an_ipv6_literal_inbox_is_vetted_by_the_guard() -> None:
    """The split URL's host ([::1], brackets dropped) goes through the same guard."""
    client, signed = make_client(Settings(allow_private_addresses=False))
    try:
        with pytest.raises(AddressRefused, match="::1"):
            await signed.post("http://[::1]:9/inbox", BODY, auth(), HEADERS)
    finally:
        await client.aclose()
