"""WebFinger: handle parsing, host normalisation, JRD build/parse, and the round trip.

The round trip runs against an httpx.MockTransport standing in for remote servers (the network
edge); the address guard itself is tested on real loopback servers in test_fetch.py.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from activitypub.errors import FetchError, WebFingerError
from activitypub.webfinger import (
    Jrd,
    build_jrd,
    normalise_host,
    parse_acct,
    parse_jrd,
    resolve_handle,
    self_link,
    webfinger_url,
)

PARSED = [
    ("acct:alice@example.org", ("alice", "example.org")),
    ("@alice@example.org", ("alice", "example.org")),
    ("alice@example.org", ("alice", "example.org")),
    ("ACCT:alice@example.org", ("alice", "example.org")),
    ("acct:alice@127.0.0.1:8123", ("alice", "127.0.0.1:8123")),
    ("alice@localhost:8123", ("alice", "localhost:8123")),
    ("acct:Alice@Example.ORG.", ("Alice", "example.org")),
    ("alice@bücher.example", ("alice", "xn--bcher-kva.example")),
    ("alice@[::1]:8123", ("alice", "[::1]:8123")),
    ("alice.smith-2@example.org", ("alice.smith-2", "example.org")),
]


@pytest.mark.parametrize(("handle", "expected"), PARSED)
def test_handles_parse(handle: str, expected: tuple[str, str]) -> None:
    assert parse_acct(handle) == expected


REFUSED = [
    "alice",
    "@alice",
    "acct:alice@",
    "acct:@example.org",
    "@@example.org",
    "alice@evil@example.org",
    "alice @example.org",
    "alice@exam ple.org",
    "alice@example.org/../admin",
    "alice@example.org?resource=x",
    "alice@example.org#frag",
    "alice@example.org\r\nX-Injected: 1",
    "alice@example.org\x00",
    "alice@example.org\t",
    "ali\\ce@example.org",
    "alice%40x@example.org",
    "alice@example.org:",
    "alice@example.org:0",
    "alice@example.org:99999",
    "alice@example.org:80:80",
    "alice@example..org",
    "alice@.",
    "alice@[::1",
    "alice@[nope]:80",
    "al:ice@example.org",
    "alice@exa_mple.org",
    "alice@example.org\u2028",
]


@pytest.mark.parametrize("handle", REFUSED)
def test_malformed_or_injected_handles_are_refused(handle: str) -> None:
    with pytest.raises(WebFingerError):
        parse_acct(handle)


NORMALISED = [
    ("upper case", "EXAMPLE.ORG", "example.org"),
    ("mixed case", "Social.Example.Org", "social.example.org"),
    ("trailing dot", "example.org.", "example.org"),
    ("trailing dot and port", "example.org.:8123", "example.org:8123"),
    ("punycode kept", "xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("punycode upper", "XN--BCHER-KVA.EXAMPLE", "xn--bcher-kva.example"),
    ("unicode", "bücher.example", "xn--bcher-kva.example"),
    ("unicode upper", "BÜCHER.EXAMPLE", "xn--bcher-kva.example"),
    ("UTS-46 mapping of a ligature", "\ufb01.example", "fi.example"),
    ("full-width letters", "\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.org", "example.org"),
    ("port kept", "example.org:8123", "example.org:8123"),
    ("port leading zero", "example.org:08123", "example.org:8123"),
    ("IPv4 with port", "127.0.0.1:8123", "127.0.0.1:8123"),
    ("IPv6 compressed", "[0:0:0:0:0:0:0:1]:8123", "[::1]:8123"),
]


@pytest.mark.parametrize(("name", "host", "expected"), NORMALISED, ids=[n for n, *_ in NORMALISED])
def test_hosts_normalise(name: str, host: str, expected: str) -> None:
    assert normalise_host(host) == expected


def test_webfinger_url_keeps_acct_unescaped_and_the_port() -> None:
    assert webfinger_url("127.0.0.1:8123", "acct:alice@127.0.0.1:8123", scheme="http") == (
        "http://127.0.0.1:8123/.well-known/webfinger?resource=acct:alice@127.0.0.1:8123"
    )
    assert webfinger_url("example.org", "https://example.org/users/a b") == (
        "https://example.org/.well-known/webfinger?resource=https:%2F%2Fexample.org%2Fusers%2Fa%20b"
    )
    with pytest.raises(WebFingerError):
        webfinger_url("example.org", "acct:a@example.org", scheme="gopher")


def test_build_and_parse_round_trip() -> None:
    jrd = build_jrd(
        "acct:alice@example.org",
        ["https://example.org/users/alice", "https://example.org/@alice"],
        [
            {
                "rel": "http://webfinger.net/rel/profile-page",
                "type": "text/html",
                "href": "https://example.org/@alice",
            },
            self_link("https://example.org/users/alice"),
        ],
    )
    assert json.loads(json.dumps(jrd)) == jrd
    assert parse_jrd(jrd) == Jrd(
        subject="acct:alice@example.org",
        aliases=("https://example.org/users/alice", "https://example.org/@alice"),
        actor_id="https://example.org/users/alice",
    )


def test_a_self_link_with_the_ld_json_profile_is_accepted() -> None:
    link = {
        "rel": "self",
        "href": "https://example.org/u/a",
        "type": 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"',
    }
    assert parse_jrd({"subject": "acct:a@example.org", "links": [link]}).actor_id == (
        "https://example.org/u/a"
    )


@pytest.mark.parametrize(
    "document",
    [
        [],
        {},
        {"subject": 3, "links": [self_link("https://example.org/u/a")]},
        {"subject": "acct:a@example.org"},
        {"subject": "acct:a@example.org", "links": [{"rel": "self", "href": "https://x/u/a"}]},
        {
            "subject": "acct:a@example.org",
            "links": [{"rel": "self", "type": "text/html", "href": "https://x/u/a"}],
        },
        {
            "subject": "acct:a@example.org",
            "links": [
                {"rel": "alternate", "type": "application/activity+json", "href": "https://x"}
            ],
        },
        {"subject": "acct:a@example.org", "links": [self_link("javascript:alert(1)")]},
    ],
)
def test_jrds_without_a_usable_self_link_are_refused(document: Any) -> None:
    with pytest.raises(WebFingerError):
        parse_jrd(document)


def test_jrd_names_the_handle_by_subject_or_alias() -> None:
    jrd = Jrd("acct:alice@Example.org.", ("acct:alice@old.example",), "https://example.org/u/a")
    assert jrd.names("acct:alice@example.org")
    assert jrd.names("alice@old.example")
    assert not jrd.names("alice@evil.example")


class FakeFediverse:
    """Remote servers answering WebFinger and actor documents, keyed by host."""

    def __init__(self) -> None:
        self.jrds: dict[tuple[str, str], dict[str, Any]] = {}
        self.actors: dict[str, dict[str, Any]] = {}
        self.requests: list[httpx.Request] = []

    def person(self, actor_id: str, name: str) -> None:
        self.actors[actor_id] = {"id": actor_id, "type": "Person", "preferredUsername": name}

    def finger(self, host: str, resource: str, subject: str, actor_id: str) -> None:
        self.jrds[(host, resource.lower())] = build_jrd(subject, [actor_id], [self_link(actor_id)])

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/.well-known/webfinger":
            # Case-insensitive, as Mastodon matches usernames.
            key = (request.url.netloc.decode(), request.url.params["resource"].lower())
            if key in self.jrds:
                return httpx.Response(
                    200, json=self.jrds[key], headers={"Content-Type": "application/jrd+json"}
                )
            return httpx.Response(404)
        actor = self.actors.get(str(request.url))
        if actor is None:
            return httpx.Response(404)
        return httpx.Response(
            200, content=json.dumps(actor), headers={"Content-Type": "application/activity+json"}
        )


@pytest.fixture
def fedi() -> FakeFediverse:
    return FakeFediverse()


@pytest.fixture
async def client(fedi: FakeFediverse) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(fedi)) as built:
        yield built


async def test_a_plain_handle_resolves_in_two_requests(
    fedi: FakeFediverse, client: httpx.AsyncClient
) -> None:
    fedi.person("https://example.org/users/alice", "alice")
    fedi.finger(
        "example.org",
        "acct:alice@example.org",
        "acct:alice@example.org",
        "https://example.org/users/alice",
    )
    assert await resolve_handle(client, "@Alice@EXAMPLE.org.") == "https://example.org/users/alice"
    assert [str(r.url) for r in fedi.requests] == [
        "https://example.org/.well-known/webfinger?resource=acct:Alice@example.org",
        "https://example.org/users/alice",
    ]
    assert fedi.requests[0].headers["accept"].startswith("application/jrd+json")


async def test_a_development_handle_with_a_port_resolves_over_http(
    fedi: FakeFediverse, client: httpx.AsyncClient
) -> None:
    actor = "http://127.0.0.1:8123/users/alice"
    fedi.person(actor, "alice")
    fedi.finger("127.0.0.1:8123", "acct:alice@127.0.0.1:8123", "acct:alice@127.0.0.1:8123", actor)
    assert await resolve_handle(client, "alice@127.0.0.1:8123", scheme="http") == actor


async def test_a_split_domain_handle_is_confirmed_by_the_actor_host(
    fedi: FakeFediverse, client: httpx.AsyncClient
) -> None:
    actor = "https://social.example.org/users/alice"
    fedi.person(actor, "alice")
    fedi.finger("example.org", "acct:alice@example.org", "acct:alice@example.org", actor)
    fedi.finger(
        "social.example.org", "acct:alice@social.example.org", "acct:alice@example.org", actor
    )
    assert await resolve_handle(client, "alice@example.org") == actor
    assert len(fedi.requests) == 3


async def test_a_third_host_cannot_claim_someone_elses_actor(
    fedi: FakeFediverse, client: httpx.AsyncClient
) -> None:
    actor = "https://social.example.org/users/alice"
    fedi.person(actor, "alice")
    fedi.finger("evil.example", "acct:alice@evil.example", "acct:alice@evil.example", actor)
    fedi.finger(
        "social.example.org",
        "acct:alice@social.example.org",
        "acct:alice@social.example.org",
        actor,
    )
    with pytest.raises(WebFingerError, match="does not confirm"):
        await resolve_handle(client, "alice@evil.example")


async def test_the_actor_host_must_give_back_the_same_actor(
    fedi: FakeFediverse, client: httpx.AsyncClient
) -> None:
    actor = "https://social.example.org/users/alice"
    fedi.person(actor, "alice")
    fedi.finger("example.org", "acct:alice@example.org", "acct:alice@example.org", actor)
    fedi.finger(
        "social.example.org",
        "acct:alice@social.example.org",
        "acct:alice@example.org",
        "https://social.example.org/users/someone-else",
    )
    with pytest.raises(WebFingerError, match="points at"):
        await resolve_handle(client, "alice@example.org")


async def test_a_renamed_actor_on_the_same_host_is_checked_again(
    fedi: FakeFediverse, client: httpx.AsyncClient
) -> None:
    # The handle says alice but the actor calls itself bob: bob@host must lead back to it.
    actor = "https://example.org/users/1"
    fedi.person(actor, "bob")
    fedi.finger("example.org", "acct:alice@example.org", "acct:alice@example.org", actor)
    with pytest.raises(FetchError):  # example.org knows no bob: 404
        await resolve_handle(client, "alice@example.org")
    fedi.finger("example.org", "acct:bob@example.org", "acct:bob@example.org", actor)
    with pytest.raises(WebFingerError, match="does not confirm"):
        await resolve_handle(client, "alice@example.org")


@pytest.mark.parametrize(
    "break_it",
    [
        lambda actor: actor.pop("preferredUsername"),
        lambda actor: actor.update(preferredUsername=["alice"]),
        lambda actor: actor.update(id="https://example.org/users/mallory"),
    ],
)
async def test_an_unusable_actor_is_refused(
    break_it: Callable[[dict[str, Any]], object], fedi: FakeFediverse, client: httpx.AsyncClient
) -> None:
    actor = "https://example.org/users/alice"
    fedi.person(actor, "alice")
    break_it(fedi.actors[actor])
    fedi.finger("example.org", "acct:alice@example.org", "acct:alice@example.org", actor)
    with pytest.raises((WebFingerError, FetchError)):
        await resolve_handle(client, "alice@example.org")


async def test_an_unknown_handle_is_a_fetch_error(client: httpx.AsyncClient) -> None:
    with pytest.raises(FetchError):
        await resolve_handle(client, "nobody@example.org")
