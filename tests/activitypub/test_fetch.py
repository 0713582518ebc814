"""The guarded fetcher, against real HTTP servers on 127.0.0.1 only.

"Public" here means a loopback listener that the injected classifier calls public; every name is
answered by an injected resolver, and the inner transport is a recording connector that forwards
only to loopback and records everything it was asked to connect to. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import gzip
import ipaddress
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import Any

import httpx
import pytest

from activitypub.addresses import IPAddress, is_global_address
from activitypub.errors import (
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
from activitypub.fetch import (
    fetch_json,
    fetch_object,
    fetch_raw,
    make_guarded_client,
    system_resolver,
)

LOOPBACK = ipaddress.ip_address("127.0.0.1")
AS_TYPE = "application/activity+json"
Handler = Callable[[asyncio.StreamWriter, dict[str, str]], Awaitable[None]]


class LoopbackServer:
    """A tiny HTTP/1.1 server on 127.0.0.1 whose routes write raw responses."""

    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        # Slow handlers (slow loris, silence) are still running: stop them with the test.
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, *header_lines = head.decode("latin-1").split("\r\n")
            path = line.split(" ")[1]
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (h.partition(":") for h in header_lines if h)
            }
            self.requests.append((path, headers))
            handler = self.routes.get(path, respond(404, b"not here", "text/plain"))
            await handler(writer, headers)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def respond(
    status: int, body: bytes, content_type: str, extra: Iterable[tuple[str, str]] = ()
) -> Handler:
    async def handler(writer: asyncio.StreamWriter, _headers: dict[str, str]) -> None:
        lines = [
            f"HTTP/1.1 {status} X",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        lines += [f"{name}: {value}" for name, value in extra]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    return handler


def document(doc: dict[str, Any], content_type: str = AS_TYPE) -> Handler:
    return respond(200, json.dumps(doc).encode(), content_type)


def redirect(location: str, status: int = 302) -> Handler:
    return respond(status, b"", "text/plain", [("Location", location)])


class RecordingConnector(httpx.AsyncBaseTransport):
    """Records every (host, port, Host header, SNI) it is asked to connect to; forwards only
    to loopback, and refuses everything else without opening a socket."""

    def __init__(self, forward: bool = True) -> None:
        self.connects: list[tuple[str, int | None, str | None, str | None]] = []
        self._forward = forward
        self._real = httpx.AsyncHTTPTransport()

    @property
    def hosts(self) -> list[str]:
        return [host for host, *_ in self.connects]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.connects.append(
            (
                request.url.host,
                request.url.port,
                request.headers.get("host"),
                request.extensions.get("sni_hostname"),
            )
        )
        if self._forward and ipaddress.ip_address(request.url.host).is_loopback:
            return await self._real.handle_async_request(request)
        raise httpx.ConnectError("recording connector: not forwarding off loopback")

    async def aclose(self) -> None:
        await self._real.aclose()


class Resolver:
    """Answers names from a table; a list of answer lists is served one per lookup (rebinding)."""

    def __init__(self, table: dict[str, list[list[str]]]) -> None:
        self.table = table
        self.lookups: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.lookups.append(host)
        answers = self.table.get(host)
        if not answers:
            raise httpx.ConnectError(f"test resolver: unknown name {host}")
        current = answers.pop(0) if len(answers) > 1 else answers[0]
        return [ipaddress.ip_address(a) for a in current]


def loopback_is_public(ip: IPAddress) -> bool:
    return ip == LOOPBACK or is_global_address(ip)


@pytest.fixture
async def server() -> AsyncIterator[LoopbackServer]:
    srv = LoopbackServer()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
def resolver() -> Resolver:
    return Resolver(
        {
            "public.test": [["127.0.0.1"]],
            "other.test": [["127.0.0.1"]],
            "internal.test": [["10.0.0.1"]],
            "mixed.test": [["127.0.0.1", "10.0.0.1"]],
            "metadata.test": [["169.254.169.254"]],
        }
    )


@pytest.fixture
def connector() -> RecordingConnector:
    return RecordingConnector()


@pytest.fixture
async def client(
    resolver: Resolver, connector: RecordingConnector
) -> AsyncIterator[httpx.AsyncClient]:
    async with make_guarded_client(
        allow_private=False,
        resolver=resolver,
        classifier=loopback_is_public,
        inner=connector,
        timeout=httpx.Timeout(0.5),
    ) as built:
        yield built


async def test_fetches_an_object_through_the_vetted_ip(
    server: LoopbackServer, client: httpx.AsyncClient, connector: RecordingConnector
) -> None:
    url = server.url("public.test", "/users/alice")
    server.routes["/users/alice"] = document({"id": url, "type": "Person"})
    assert await fetch_object(client, url) == {"id": url, "type": "Person"}
    # The socket went to the IP; the server still saw the name.
    assert connector.connects == [("127.0.0.1", server.port, f"public.test:{server.port}", None)]
    _path, headers = server.requests[0]
    assert headers["host"] == f"public.test:{server.port}"
    assert headers["accept"].startswith("application/activity+json")


async def test_https_keeps_the_name_for_sni(resolver: Resolver) -> None:
    connector = RecordingConnector(forward=False)
    async with make_guarded_client(
        allow_private=False, resolver=resolver, classifier=loopback_is_public, inner=connector
    ) as client:
        with pytest.raises(FetchError):
            await fetch_object(client, "https://public.test/users/alice")
    assert connector.connects == [("127.0.0.1", None, "public.test", "public.test")]


# Every spelling of a non-global address in a URL, refused before any connection is attempted.
REFUSED_URLS = [
    ("decimal", "http://2130706433/"),
    ("hex", "http://0x7f000001/"),
    ("octal", "http://0177.0.0.1/"),
    ("short form", "http://127.1/"),
    ("trailing dot", "http://127.0.0.1./"),
    ("plain loopback", "http://127.0.0.1/"),
    ("userinfo trick", "http://public.example@127.0.0.1/"),
    ("userinfo to a public name", "http://user@public.test/"),
    ("private", "http://10.0.0.1/"),
    ("metadata", "http://169.254.169.254/latest/meta-data/"),
    ("metadata decimal", "http://2852039166/"),
    ("zero", "http://0/"),
    ("CGNAT", "http://100.64.0.1/"),
    ("v6 loopback", "http://[::1]/"),
    ("v6 zone id", "http://[fe80::1%25eth0]/"),
    ("v6 unique local", "http://[fd00::1]/"),
    ("v4-mapped", "http://[::ffff:127.0.0.1]/"),
    ("v4-mapped hex", "http://[::ffff:7f00:1]/"),
    ("NAT64 private", "http://[64:ff9b::a00:1]/"),
    ("6to4 private", "http://[2002:a00:1::]/"),
    ("Teredo", "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/"),
    ("name resolving private", "http://internal.test/"),
    ("name resolving to metadata", "http://metadata.test/"),
    ("name with one private answer", "http://mixed.test/"),
    ("file scheme", "file:///etc/passwd"),
    ("ftp scheme", "ftp://public.test/"),
    ("gopher scheme", "gopher://public.test/"),
]


@pytest.mark.parametrize(("name", "url"), REFUSED_URLS, ids=[row[0] for row in REFUSED_URLS])
async def test_non_global_urls_are_refused(
    name: str, url: str, resolver: Resolver, connector: RecordingConnector
) -> None:
    # The real classifier: loopback is not public here.
    async with make_guarded_client(
        allow_private=False, resolver=resolver, inner=connector
    ) as client:
        with pytest.raises(AddressRefused):
            await fetch_object(client, url)
    assert connector.connects == []
    # IP literals are classified directly, never handed to a resolver.
    assert all(host.endswith(".test") for host in resolver.lookups)


@pytest.mark.parametrize(
    "url", ["http://public.example@127.0.0.1/", "http://2130706433/", "http://[::ffff:10.0.0.1]/"]
)
async def test_the_transport_itself_refuses_without_the_fetch_helpers(
    url: str, resolver: Resolver, connector: RecordingConnector
) -> None:
    # Deliveries POST through the client directly: the guard must hold there too.
    async with make_guarded_client(
        allow_private=False, resolver=resolver, inner=connector
    ) as client:
        with pytest.raises(AddressRefused):
            await client.post(url, content=b"{}")
    assert connector.connects == []


@pytest.mark.parametrize("target", ["http://10.0.0.1/", "http://internal.test/x", "http://[::1]/"])
async def test_a_redirect_to_a_private_address_is_refused(
    target: str, server: LoopbackServer, client: httpx.AsyncClient, connector: RecordingConnector
) -> None:
    server.routes["/start"] = redirect(target)
    with pytest.raises(AddressRefused):
        await fetch_json(client, server.url("public.test", "/start"))
    assert connector.hosts == ["127.0.0.1"]


async def test_dns_rebinding_second_answer_is_refused(
    server: LoopbackServer,
    resolver: Resolver,
    client: httpx.AsyncClient,
    connector: RecordingConnector,
) -> None:
    resolver.table["rebind.test"] = [["127.0.0.1"], ["10.0.0.1"]]
    url = server.url("rebind.test", "/note")
    server.routes["/note"] = document({"id": url})
    assert (await fetch_object(client, url))["id"] == url
    # The connector was handed the vetted IP, never the name, so nothing could re-resolve it.
    assert connector.hosts == ["127.0.0.1"]
    with pytest.raises(AddressRefused):
        await fetch_object(client, url)
    assert connector.hosts == ["127.0.0.1"]
    assert resolver.lookups == ["rebind.test", "rebind.test"]


async def test_dns_rebinding_between_redirect_hops_is_refused(
    server: LoopbackServer,
    resolver: Resolver,
    client: httpx.AsyncClient,
    connector: RecordingConnector,
) -> None:
    resolver.table["rebind.test"] = [["127.0.0.1"], ["10.0.0.1"]]
    server.routes["/a"] = redirect("/b")
    with pytest.raises(AddressRefused):
        await fetch_object(client, server.url("rebind.test", "/a"))
    assert connector.hosts == ["127.0.0.1"]


def slow_loris(interval: float) -> Handler:
    async def handler(writer: asyncio.StreamWriter, _headers: dict[str, str]) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/activity+json\r\n"
            b"Content-Length: 100000\r\nConnection: close\r\n\r\n"
        )
        for _ in range(1000):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(interval)

    return handler


async def test_slow_loris_is_cut_by_the_overall_deadline(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    # One byte every 0.1 s never trips the 0.5 s read timeout; the overall deadline cuts it.
    # Uncut, the server would trickle for 100 s and then close short of its Content-Length (a
    # protocol error, not a timeout).
    server.routes["/slow"] = slow_loris(0.1)
    with pytest.raises(FetchTimeout):
        await fetch_object(client, server.url("public.test", "/slow"), deadline=0.5)


async def test_a_silent_server_trips_the_read_timeout(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    async def silent(writer: asyncio.StreamWriter, _headers: dict[str, str]) -> None:
        await asyncio.sleep(3)

    server.routes["/silent"] = silent
    with pytest.raises(FetchTimeout):
        await fetch_object(client, server.url("public.test", "/silent"), deadline=5)


async def test_a_huge_document_is_cut_at_the_cap(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.routes["/huge"] = respond(200, b" " * (2 << 20), AS_TYPE)
    with pytest.raises(FetchTooLarge):
        await fetch_object(client, server.url("public.test", "/huge"))


def chunked(body: bytes, content_type: str, encoding: str | None = None) -> Handler:
    async def handler(writer: asyncio.StreamWriter, _headers: dict[str, str]) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n"
        if encoding:
            head += f"Content-Encoding: {encoding}\r\n"
        writer.write((head + "Connection: close\r\n\r\n").encode())
        for start in range(0, len(body), 65536):
            piece = body[start : start + 65536]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")

    return handler


async def test_a_chunked_document_without_length_is_cut_at_the_cap(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.routes["/huge"] = chunked(b" " * (2 << 20), AS_TYPE)
    with pytest.raises(FetchTooLarge):
        await fetch_object(client, server.url("public.test", "/huge"), max_bytes=1 << 20)


async def test_a_gzip_bomb_is_cut_at_the_decoded_cap(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    bomb = gzip.compress(b"\0" * (16 << 20), compresslevel=9)
    assert len(bomb) < 20_000
    server.routes["/bomb"] = chunked(bomb, AS_TYPE, encoding="gzip")
    with pytest.raises(FetchTooLarge):
        await fetch_object(client, server.url("public.test", "/bomb"))


async def test_a_gzipped_document_under_the_cap_is_decoded(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    url = server.url("public.test", "/zipped")
    body = gzip.compress(json.dumps({"id": url, "content": "x" * 10_000}).encode())
    server.routes["/zipped"] = respond(200, body, AS_TYPE, [("Content-Encoding", "gzip")])
    assert (await fetch_object(client, url))["content"] == "x" * 10_000


@pytest.mark.parametrize("content_type", ["text/html", "application/json", "application/ld+json"])
async def test_a_wrong_content_type_is_refused(
    content_type: str, server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    url = server.url("public.test", "/page")
    server.routes["/page"] = document({"id": url}, content_type)
    with pytest.raises(FetchContentTypeError):
        await fetch_object(client, url)


async def test_ld_json_with_the_profile_and_a_charset_is_accepted(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    url = server.url("public.test", "/ld")
    server.routes["/ld"] = document(
        {"id": url},
        'application/ld+json; profile="https://www.w3.org/ns/activitystreams"; charset=utf-8',
    )
    assert (await fetch_object(client, url))["id"] == url


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"a string"'])
async def test_anything_but_a_json_object_is_refused(
    body: bytes, server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.routes["/odd"] = respond(200, body, AS_TYPE)
    with pytest.raises(FetchContentTypeError):
        await fetch_object(client, server.url("public.test", "/odd"))


@pytest.mark.parametrize("doc_id", ["http://elsewhere.test/users/alice", None, "", 42])
async def test_an_id_that_is_not_the_url_is_refused(
    doc_id: object, server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.routes["/users/alice"] = document({"id": doc_id} if doc_id is not None else {})
    with pytest.raises(FetchIdMismatch):
        await fetch_object(client, server.url("public.test", "/users/alice"))


async def test_an_id_without_a_trailing_slash_is_compared_as_sent(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    # microblog.pub's actor id is `https://host` with no path: never normalise a slash onto it.
    url = f"http://public.test:{server.port}"
    server.routes["/"] = document({"id": url})
    assert (await fetch_object(client, url))["id"] == url


@pytest.mark.parametrize("status", [404, 410, 500, 401])
async def test_a_non_2xx_status_is_reported(
    status: int, server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.routes["/x"] = respond(status, b"{}", AS_TYPE)
    with pytest.raises(FetchStatusError) as caught:
        await fetch_object(client, server.url("public.test", "/x"))
    assert caught.value.status == status


async def test_a_redirect_to_another_host_is_refused_for_objects(
    server: LoopbackServer, client: httpx.AsyncClient, connector: RecordingConnector
) -> None:
    final = server.url("other.test", "/users/alice")
    server.routes["/users/alice"] = document({"id": final})
    server.routes["/alias"] = redirect(final)
    with pytest.raises(CrossOriginRedirect):
        await fetch_object(client, server.url("public.test", "/alias"))
    assert len(connector.connects) == 1


async def test_a_cross_host_redirect_is_reported_when_allowed(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    start = server.url("public.test", "/alias")
    final = server.url("other.test", "/users/alice")
    server.routes["/users/alice"] = document({"id": final})
    server.routes["/alias"] = redirect(final)
    assert (await fetch_object(client, start, allow_cross_origin=True))["id"] == final
    result = await fetch_raw(client, start, accept="*/*", content_type_ok=lambda _ct: True)
    assert result.url == final
    assert result.redirects == (start,)
    assert result.cross_origin


async def test_a_same_host_redirect_needs_the_final_url_as_id(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    final = server.url("public.test", "/users/alice")
    server.routes["/@alice"] = redirect("/users/alice", 301)
    server.routes["/users/alice"] = document({"id": final})
    assert (await fetch_object(client, server.url("public.test", "/@alice")))["id"] == final


def chain(server: LoopbackServer, hops: int) -> str:
    for hop in range(hops):
        server.routes[f"/hop{hop}"] = redirect(f"/hop{hop + 1}", 307)
    final = server.url("public.test", f"/hop{hops}")
    server.routes[f"/hop{hops}"] = document({"id": final})
    return server.url("public.test", "/hop0")


async def test_three_redirects_are_followed(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    assert (await fetch_object(client, chain(server, 3)))["id"].endswith("/hop3")


async def test_more_than_three_redirects_are_refused(
    server: LoopbackServer, client: httpx.AsyncClient, connector: RecordingConnector
) -> None:
    with pytest.raises(TooManyRedirects):
        await fetch_object(client, chain(server, 4))
    assert len(connector.connects) == 4


class HeaderAuth(httpx.Auth):
    """Stands in for HttpSignatureAuth: marks every request it is given."""

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Signature"] = f"signed {request.url.path}"
        yield request


async def test_every_hop_is_signed_by_the_auth_passed_in(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.routes["/a"] = redirect("/b")
    final = server.url("public.test", "/b")
    server.routes["/b"] = document({"id": final})
    await fetch_object(client, server.url("public.test", "/a"), auth=HeaderAuth())
    assert [headers.get("signature") for _path, headers in server.requests] == [
        "signed /a",
        "signed /b",
    ]


async def test_fetch_json_accepts_jrd_and_refuses_html(
    server: LoopbackServer, client: httpx.AsyncClient
) -> None:
    server.routes["/jrd"] = document({"subject": "acct:a@b"}, "application/jrd+json; charset=utf-8")
    server.routes["/html"] = document({}, "text/html")
    assert await fetch_json(client, server.url("public.test", "/jrd")) == {"subject": "acct:a@b"}
    with pytest.raises(FetchContentTypeError):
        await fetch_json(client, server.url("public.test", "/html"))


async def test_allow_private_lets_the_operator_federate_on_loopback(
    server: LoopbackServer, connector: RecordingConnector
) -> None:
    url = f"http://127.0.0.1:{server.port}/local"
    server.routes["/local"] = document({"id": url})
    async with make_guarded_client(allow_private=True, inner=connector) as client:
        assert (await fetch_object(client, url))["id"] == url
    assert connector.hosts == ["127.0.0.1"]


@pytest.mark.parametrize(
    "location", ["file:///etc/passwd", "gopher://public.test/", "http://user@public.test/"]
)
async def test_a_redirect_to_a_refused_url_is_refused(
    location: str, server: LoopbackServer, client: httpx.AsyncClient, connector: RecordingConnector
) -> None:
    server.routes["/start"] = redirect(location)
    with pytest.raises(AddressRefused):
        await fetch_json(client, server.url("public.test", "/start"))
    assert connector.hosts == ["127.0.0.1"]


@pytest.mark.parametrize(("host", "expected"), [("127.0.0.1", "127.0.0.1"), ("::1", "::1")])
async def test_the_system_resolver_reads_numeric_hosts(host: str, expected: str) -> None:
    # Numeric hosts only: getaddrinfo answers these without any lookup.
    assert await system_resolver(host, 80) == [ipaddress.ip_address(expected)]
