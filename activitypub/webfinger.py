"""WebFinger (RFC 7033) for ActivityPub: acct: handles, host normalisation, JRD build and parse.

`resolve_handle` turns `alice@example.org` into an actor id and checks the answer both ways: see
its docstring for exactly what is verified.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import idna

from . import vocab
from .errors import WebFingerError
from .fetch import fetch_json, fetch_object

# Whitespace, controls, and the URL delimiters that would let a handle reshape the WebFinger
# URL it is put into (a path, a query, a fragment, an escape).
_INJECTED = re.compile(r"[\s\x00-\x1f\x7f-\x9f/\\?#%<>\"'`]")
_USER = re.compile(r"[^@:\[\]]+")


def normalise_host(host: str) -> str:
    """The canonical spelling of a handle's host: IDNA (UTS-46) A-labels, lower case, one trailing
    dot removed, a port kept (`alice@127.0.0.1:8123` occurs in development)."""
    if not host or _INJECTED.search(host) or "@" in host:
        raise WebFingerError(f"invalid host {host!r}")
    port: str | None
    if host.startswith("["):
        literal, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise WebFingerError(f"invalid host {host!r}")
        try:
            name = f"[{ipaddress.IPv6Address(literal).compressed}]"
        except ValueError as exc:
            raise WebFingerError(f"invalid IPv6 host {host!r}") from exc
        port = rest[1:] if rest else None
    else:
        name, colon, port = host.partition(":")
        if not colon:
            port = None
        name = _normalise_name(name, host)
    if port is None:
        return name
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise WebFingerError(f"invalid port in {host!r}")
    return f"{name}:{int(port)}"


def _normalise_name(name: str, original: str) -> str:
    if name.endswith("."):
        name = name[:-1]
    if not name or "" in name.split("."):
        raise WebFingerError(f"empty label in host {original!r}")
    try:
        return str(ipaddress.IPv4Address(name))
    except ValueError:
        pass
    try:
        return idna.encode(name, uts46=True).decode("ascii").lower()
    except idna.IDNAError as exc:
        raise WebFingerError(f"invalid host name {original!r}: {exc}") from exc


def parse_acct(resource: str) -> tuple[str, str]:
    """The (user, normalised host) of a handle: `acct:alice@host`, `@alice@host`, `alice@host`.

    The user part is kept as given (servers compare it case-insensitively or not at all);
    anything that could be injected into a URL is refused with WebFingerError.
    """
    if not isinstance(resource, str) or _INJECTED.search(resource):
        raise WebFingerError(f"invalid handle {resource!r}")
    text = resource
    if text[:5].lower() == "acct:":
        text = text[5:]
    elif text.startswith("@"):
        text = text[1:]
    user, at, host = text.rpartition("@")
    if not at or not _USER.fullmatch(user):
        raise WebFingerError(f"invalid handle {resource!r}")
    return user, normalise_host(host)


def format_acct(user: str, host: str) -> str:
    """The `acct:` URI of a user at a (normalised) host."""
    return f"acct:{user}@{host}"


def webfinger_url(host: str, resource: str, *, scheme: str = "https") -> str:
    """The WebFinger query URL for `resource` at `host` (port kept).

    `@` and `:` stay unescaped in the resource, as peers send it and some servers require.
    """
    if scheme not in ("http", "https"):
        raise WebFingerError(f"scheme {scheme!r} is not http or https")
    return f"{scheme}://{host}/.well-known/webfinger?resource={quote(resource, safe=':@')}"


def self_link(actor_id: str) -> dict[str, str]:
    """The JRD link that points a handle at its ActivityPub actor."""
    return {"rel": "self", "type": vocab.ACTIVITY_JSON, "href": actor_id}


def build_jrd(
    subject: str, aliases: Iterable[str] = (), links: Iterable[Mapping[str, str]] = ()
) -> dict[str, Any]:
    """A JRD document for a subject, its aliases and links (see `self_link`)."""
    return {"subject": subject, "aliases": list(aliases), "links": [dict(link) for link in links]}


@dataclass(frozen=True)
class Jrd:
    """A parsed WebFinger answer: its subject, aliases and ActivityPub actor id."""

    subject: str
    aliases: tuple[str, ...]
    actor_id: str

    def names(self, handle: str) -> bool:
        """True if the subject or an alias is the `acct:` handle (host compared normalised)."""
        wanted = parse_acct(handle)
        for candidate in (self.subject, *self.aliases):
            if not candidate.lower().startswith("acct:"):
                continue
            try:
                if parse_acct(candidate) == wanted:
                    return True
            except WebFingerError:
                continue
        return False


def parse_jrd(document: object) -> Jrd:
    """The subject, aliases and `self` ActivityStreams link of a JRD; WebFingerError if absent."""
    if not isinstance(document, dict):
        raise WebFingerError("JRD is not a JSON object")
    subject = document.get("subject")
    if not isinstance(subject, str) or not subject:
        raise WebFingerError("JRD has no subject")
    aliases = tuple(
        alias for alias in vocab.as_list(document.get("aliases")) if isinstance(alias, str)
    )
    for link in vocab.as_list(document.get("links")):
        if not isinstance(link, dict) or link.get("rel") != "self":
            continue
        href, media_type = link.get("href"), link.get("type")
        if (
            isinstance(href, str)
            and href.startswith(("https://", "http://"))
            and isinstance(media_type, str)
            and vocab.media_type_is_activitystreams(media_type)
        ):
            return Jrd(subject=subject, aliases=aliases, actor_id=href)
    raise WebFingerError(f"JRD for {subject!r} has no ActivityStreams self link")


async def webfinger(
    client: httpx.AsyncClient, user: str, host: str, *, scheme: str = "https"
) -> Jrd:
    """Query `host` for `acct:user@host` and parse the answer."""
    url = webfinger_url(host, format_acct(user, host), scheme=scheme)
    return parse_jrd(await fetch_json(client, url))


def _host_of(actor_id: str) -> str:
    url = httpx.URL(actor_id)
    host = url.raw_host.decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    return normalise_host(f"{host}:{url.port}" if url.port is not None else host)


async def resolve_handle(
    client: httpx.AsyncClient,
    handle: str,
    *,
    scheme: str = "https",
    auth: httpx.Auth | None = None,
) -> str:
    """The actor id of `handle`, checked in both directions.

    1. WebFinger at the handle's host for `acct:user@host` gives an ActivityStreams self link.
    2. That actor is fetched with `fetch_object` (signed with `auth`; id == final URL, no
       cross-origin redirect) and must carry a string `preferredUsername`.
    3. Unless the actor lives on the handle's own host under the same name (case-insensitive),
       where step 1 already was the actor's server speaking, WebFinger at the actor's host for
       `acct:preferredUsername@actor-host` must give the same actor id AND name the handle asked
       for as its subject or an alias. So a split-domain server (handle on example.org, actor on
       social.example.org) passes, while a third host cannot claim someone else's actor.
    """
    user, host = parse_acct(handle)
    first = await webfinger(client, user, host, scheme=scheme)
    actor = await fetch_object(client, first.actor_id, auth=auth)
    name = actor.get("preferredUsername")
    if not isinstance(name, str) or not name:
        raise WebFingerError(f"actor {first.actor_id} has no preferredUsername")
    actor_host = _host_of(first.actor_id)
    if actor_host == host and name.lower() == user.lower():
        return first.actor_id
    back = await webfinger(client, name, actor_host, scheme=scheme)
    if back.actor_id != first.actor_id:
        raise WebFingerError(
            f"{handle} points at {first.actor_id}, but {name}@{actor_host} is {back.actor_id}"
        )
    if not back.names(format_acct(user, host)):
        raise WebFingerError(f"{actor_host} does not confirm {handle} for {first.actor_id}")
    return first.actor_id
