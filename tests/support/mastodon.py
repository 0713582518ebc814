"""A Mastodon-shaped remote: one actor at http://mastodon.test/users/alice, checked like Mastodon.

`MastodonRemote` is a small starlette app registered on the factory's routing transport. It
serves alice's actor document the way Mastodon 4.4 does, WebFinger for `acct:alice@mastodon.test`,
an instance actor (`/actor`, whose key signs the key fetches, as Mastodon's does), and an inbox
(personal and shared) that verifies what it receives the way Mastodon verifies it:

* a `Signature` header (Cavage draft, rsa-sha256 or hs2019);
* covered headers include `(request-target)`, `host`, `date`, and `digest` on a POST;
* `Digest: SHA-256=...` matches the body;
* `Date` within an hour of now;
* the keyId (fetched without its fragment, signed, `Accept: application/activity+json`) names an
  actor whose `publicKey.id` is the keyId and whose `publicKeyPem` verifies the signature;
* the content type is ActivityStreams; the activity's actor is the key's owner.

The signature is checked here with `cryptography` directly, not with the project's
`activitypub.signatures`, so the two implementations check each other. Every accepted activity
lands in `received`, every refusal in `refusals` (answered 401 with the reason).

It also sends like Mastodon: a Follow to an actor's personal inbox and a Create{Note} reply to a
shared inbox, signed over Mastodon 4.4's header order or 4.3's (`MASTODON_44`, `MASTODON_43`).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any
from urllib.parse import urldefrag, urlsplit

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activitypub.keys import generate_rsa, public_to_pem

HOST = "mastodon.test"
BASE = f"http://{HOST}"
ALICE = f"{BASE}/users/alice"
ALICE_KEY = f"{ALICE}#main-key"
INSTANCE_ACTOR = f"{BASE}/actor"
INSTANCE_KEY = f"{INSTANCE_ACTOR}#main-key"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"

# The order in which Mastodon lists the signed headers of a POST.
MASTODON_44 = ("host", "date", "digest", "content-type", "(request-target)")
MASTODON_43 = ("(request-target)", "host", "date", "digest", "content-type")
HEADER_ORDERS = {"mastodon-4.4": MASTODON_44, "mastodon-4.3": MASTODON_43}

ACTIVITY_JSON = "application/activity+json"
AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
CLOCK_SKEW = 3600.0

# Mastodon's allowlist for remote HTML (Sanitize::Config::MASTODON_STRICT), for nh3.
MASTODON_TAGS = {
    "p", "br", "span", "a", "abbr", "del", "s", "pre", "blockquote", "code", "b", "strong",
    "u", "sub", "sup", "i", "em", "h1", "h2", "h3", "h4", "h5", "ul", "ol", "li",
    "ruby", "rt", "rp",
}  # fmt: skip
MASTODON_ATTRIBUTES = {
    "a": {"href", "class", "translate"},
    "span": {"class", "translate"},
    "ol": {"start", "reversed"},
    "li": {"value"},
    "p": {"class"},
}


@functools.cache
def mastodon_keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    """alice's key and the instance actor's: generated once per test process (~0.1 s each)."""
    return generate_rsa(), generate_rsa()


def http_date(moment: float) -> str:
    return format_datetime(_utc(moment), usegmt=True)


def _utc(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


def sha256_digest(body: bytes) -> str:
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def signing_string(
    method: str, target: str, headers: dict[str, str], covered: tuple[str, ...]
) -> str:
    lines = []
    for name in covered:
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {target}")
        else:
            lines.append(f"{name}: {headers[name]}")
    return "\n".join(lines)


def sign_headers(
    method: str,
    url: str,
    body: bytes | None,
    *,
    key: rsa.RSAPrivateKey,
    key_id: str,
    covered: tuple[str, ...],
    date: float | None = None,
    content_type: str = ACTIVITY_JSON,
    accept: str | None = None,
) -> dict[str, str]:
    """Headers Mastodon's `Request` would send: Host, Date, (Digest, Content-Type), Signature."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    values: dict[str, str] = {
        "host": parts.netloc,
        "date": http_date(time.time() if date is None else date),
    }
    if body is not None:
        values["digest"] = sha256_digest(body)
        values["content-type"] = content_type
    if accept is not None:
        values["accept"] = accept
    signature = key.sign(
        signing_string(method, target, values, covered).encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    header = (
        f'keyId="{key_id}",algorithm="rsa-sha256",headers="{" ".join(covered)}",'
        f'signature="{base64.b64encode(signature).decode("ascii")}"'
    )
    named = {name.title(): value for name, value in values.items()}
    named["Signature"] = header
    return named


def _parse_signature(value: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in value.split(","):
        name, _, raw = item.strip().partition("=")
        params[name.strip().lower()] = raw.strip().strip('"')
    return params


class Refused(Exception):
    pass


@dataclass
class Received:
    path: str
    activity: dict[str, Any]
    headers: dict[str, str]
    covered: tuple[str, ...]


class Forwarded(Exception):
    """A validly signed request whose signer is not the activity's actor."""

    def __init__(self, received: Received) -> None:
        super().__init__("forwarded")
        self.received = received


@dataclass
class MastodonRemote:
    """The remote at mastodon.test; `register` puts it on a factory's routing transport."""

    http: httpx.AsyncClient
    received: list[Received] = field(default_factory=list)
    refusals: list[tuple[str, str]] = field(default_factory=list)
    # Forwarded activities (signer is not the actor, no LD signature): accepted, then dropped.
    dropped: list[Received] = field(default_factory=list)
    key_fetches: list[str] = field(default_factory=list)
    statuses: dict[str, dict[str, Any]] = field(default_factory=dict)
    clock: Any = time.time

    def __post_init__(self) -> None:
        self.key, self.instance_key = mastodon_keys()
        self._ids = itertools.count(110_000_000_000_000_001)
        self.app = Starlette(
            routes=[
                Route("/users/alice", self.actor_document, methods=["GET"]),
                Route("/actor", self.instance_actor_document, methods=["GET"]),
                Route("/.well-known/webfinger", self.webfinger, methods=["GET"]),
                Route("/users/alice/inbox", self.inbox, methods=["POST"]),
                Route("/inbox", self.inbox, methods=["POST"]),
                Route("/users/alice/statuses/{sid}", self.status, methods=["GET"]),
            ]
        )

    @classmethod
    def register(cls, factory: Any) -> MastodonRemote:
        remote = cls(http=factory.http)
        factory.transport.add(HOST, httpx.ASGITransport(app=remote.app))
        return remote

    # ---------------------------------------------------------------------------- documents

    def actor(self) -> dict[str, Any]:
        """alice, as Mastodon 4.4 serves a Person."""
        return {
            "@context": [
                AS_CONTEXT,
                "https://w3id.org/security/v1",
                {
                    "manuallyApprovesFollowers": "as:manuallyApprovesFollowers",
                    "toot": "http://joinmastodon.org/ns#",
                    "featured": {"@id": "toot:featured", "@type": "@id"},
                    "featuredTags": {"@id": "toot:featuredTags", "@type": "@id"},
                    "discoverable": "toot:discoverable",
                    "indexable": "toot:indexable",
                    "memorial": "toot:memorial",
                    "attributionDomains": {"@id": "toot:attributionDomains", "@type": "@id"},
                },
            ],
            "id": ALICE,
            "type": "Person",
            "following": f"{ALICE}/following",
            "followers": f"{ALICE}/followers",
            "inbox": f"{ALICE}/inbox",
            "outbox": f"{ALICE}/outbox",
            "featured": f"{ALICE}/collections/featured",
            "featuredTags": f"{ALICE}/collections/tags",
            "preferredUsername": "alice",
            "name": "Alice",
            "summary": "<p>Reads long stories.</p>",
            "url": f"{BASE}/@alice",
            "manuallyApprovesFollowers": False,
            "discoverable": True,
            "indexable": True,
            "published": "2024-01-01T00:00:00Z",
            "memorial": False,
            "attributionDomains": [],
            "publicKey": {
                "id": ALICE_KEY,
                "owner": ALICE,
                "publicKeyPem": public_to_pem(self.key),
            },
            "tag": [],
            "attachment": [],
            "endpoints": {"sharedInbox": f"{BASE}/inbox"},
        }

    def instance_actor(self) -> dict[str, Any]:
        return {
            "@context": [AS_CONTEXT, "https://w3id.org/security/v1"],
            "id": INSTANCE_ACTOR,
            "type": "Application",
            "inbox": f"{INSTANCE_ACTOR}/inbox",
            "outbox": f"{INSTANCE_ACTOR}/outbox",
            "preferredUsername": HOST,
            "url": f"{BASE}/about/more?instance_actor=true",
            "manuallyApprovesFollowers": True,
            "publicKey": {
                "id": INSTANCE_KEY,
                "owner": INSTANCE_ACTOR,
                "publicKeyPem": public_to_pem(self.instance_key),
            },
            "endpoints": {"sharedInbox": f"{BASE}/inbox"},
        }

    @staticmethod
    def _activity_json(document: dict[str, Any], status: int = 200) -> Response:
        return Response(
            json.dumps(document),
            status_code=status,
            media_type="application/activity+json; charset=utf-8",
        )

    async def actor_document(self, request: Request) -> Response:
        return self._activity_json(self.actor())

    async def instance_actor_document(self, request: Request) -> Response:
        return self._activity_json(self.instance_actor())

    async def status(self, request: Request) -> Response:
        note = self.statuses.get(str(request.url).split("?")[0])
        if note is None:
            return JSONResponse({"error": "Record not found"}, status_code=404)
        return self._activity_json({"@context": AS_CONTEXT, **note})

    async def webfinger(self, request: Request) -> Response:
        resource = request.query_params.get("resource", "")
        if resource not in (f"acct:alice@{HOST}", ALICE, f"{BASE}/@alice"):
            return Response(status_code=404)
        return JSONResponse(
            {
                "subject": f"acct:alice@{HOST}",
                "aliases": [f"{BASE}/@alice", ALICE],
                "links": [
                    {
                        "rel": "http://webfinger.net/rel/profile-page",
                        "type": "text/html",
                        "href": f"{BASE}/@alice",
                    },
                    {"rel": "self", "type": ACTIVITY_JSON, "href": ALICE},
                    {
                        "rel": "http://ostatus.org/schema/1.0/subscribe",
                        "template": f"{BASE}/authorize_interaction?uri={{uri}}",
                    },
                ],
            },
            media_type="application/jrd+json; charset=utf-8",
        )

    # ---------------------------------------------------------------------------- the inbox

    async def inbox(self, request: Request) -> Response:
        body = await request.body()
        try:
            received = await self._verify(request, body)
        except Refused as refusal:
            self.refusals.append((request.url.path, str(refusal)))
            return JSONResponse({"error": str(refusal)}, status_code=401)
        except Forwarded as forwarded:
            self.dropped.append(forwarded.received)
            return Response(status_code=202)
        self.received.append(received)
        return Response(status_code=202)

    async def _verify(self, request: Request, body: bytes) -> Received:
        header = request.headers.get("signature")
        if not header:
            raise Refused("Request not signed")
        params = _parse_signature(header)
        key_id = params.get("keyid")
        if not key_id or "signature" not in params:
            raise Refused("Incompatible request signature. keyId and signature are required")
        if params.get("algorithm", "hs2019") not in ("rsa-sha256", "hs2019"):
            raise Refused(f"Unsupported signature algorithm {params.get('algorithm')}")
        covered = tuple(params.get("headers", "date").lower().split())
        for needed in ("(request-target)", "host", "date", "digest"):
            if needed not in covered:
                raise Refused(f"Mastodon requires the {needed} header to be signed")
        digest = request.headers.get("digest", "")
        algorithm, _, value = digest.partition("=")
        if algorithm.lower() != "sha-256":
            raise Refused("Mastodon only supports SHA-256 in Digest header")
        if value != base64.b64encode(hashlib.sha256(body).digest()).decode("ascii"):
            raise Refused("Invalid Digest value")
        try:
            date = parsedate_to_datetime(request.headers.get("date", "")).timestamp()
        except (TypeError, ValueError):
            raise Refused("Invalid Date header") from None
        if abs(self.clock() - date) > CLOCK_SKEW:
            raise Refused("Signed request date outside acceptable time window")
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in (ACTIVITY_JSON, "application/ld+json"):
            raise Refused(f"content type {media!r} is not ActivityStreams")
        owner, public_pem = await self._fetch_key(key_id)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        values: dict[str, str] = {}
        for name in covered:
            if name != "(request-target)":
                found = request.headers.getlist(name)
                if not found:
                    raise Refused(f"the signed header {name} is missing")
                values[name] = ", ".join(found)
        text = signing_string(request.method, target, values, covered)
        public = serialization.load_pem_public_key(public_pem.encode())
        assert isinstance(public, rsa.RSAPublicKey)
        try:
            public.verify(
                base64.b64decode(params["signature"]),
                text.encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            raise Refused("Verification failed for the signature") from None
        try:
            activity = json.loads(body)
        except ValueError:
            raise Refused("the body is not JSON") from None
        actor = activity.get("actor")
        actor = actor.get("id") if isinstance(actor, dict) else actor
        received = Received(request.url.path, activity, dict(request.headers), covered)
        if actor != owner:
            # Mastodon answers 202, then ProcessCollectionService drops an activity signed by
            # someone other than its actor unless a Linked Data signature proves the actor.
            raise Forwarded(received)
        return received

    async def _fetch_key(self, key_id: str) -> tuple[str, str]:
        """GET the keyId without its fragment, signed by the instance actor, as Mastodon does."""
        url = urldefrag(key_id).url
        self.key_fetches.append(url)
        headers = sign_headers(
            "GET",
            url,
            None,
            key=self.instance_key,
            key_id=INSTANCE_KEY,
            covered=("(request-target)", "host", "date", "accept"),
            accept=ACTIVITY_JSON,
        )
        response = await self.http.get(url, headers=headers)
        if response.status_code != 200:
            raise Refused(f"the key {key_id} could not be fetched: HTTP {response.status_code}")
        media = response.headers.get("content-type", "").split(";")[0].strip()
        if media not in (ACTIVITY_JSON, "application/ld+json"):
            raise Refused(f"the key document has content type {media!r}")
        document = response.json()
        if document.get("id") != url:
            raise Refused("the key document's id is not its URL")
        key = document.get("publicKey")
        if not isinstance(key, dict) or key.get("id") != key_id:
            raise Refused(f"the actor at {url} does not list the key {key_id}")
        if key.get("owner") != document["id"] or not isinstance(key.get("publicKeyPem"), str):
            raise Refused("the key's owner is not the actor")
        return document["id"], key["publicKeyPem"]

    # ---------------------------------------------------------------------------- sending

    def next_id(self) -> str:
        return str(next(self._ids))

    def headers_for(
        self,
        url: str,
        body: bytes,
        *,
        covered: tuple[str, ...] = MASTODON_44,
        date: float | None = None,
        content_type: str = ACTIVITY_JSON,
        as_instance: bool = False,
    ) -> dict[str, str]:
        """alice's signed headers for a POST of `body` to `url` (or the instance actor's, as
        Mastodon signs a Flag)."""
        return sign_headers(
            "POST",
            url,
            body,
            key=self.instance_key if as_instance else self.key,
            key_id=INSTANCE_KEY if as_instance else ALICE_KEY,
            covered=covered,
            date=self.clock() if date is None else date,
            content_type=content_type,
        )

    async def post(
        self,
        url: str,
        activity: dict[str, Any] | bytes,
        *,
        covered: tuple[str, ...] = MASTODON_44,
        date: float | None = None,
        content_type: str = ACTIVITY_JSON,
        as_instance: bool = False,
    ) -> httpx.Response:
        """POST an activity (or raw bytes) to `url`, signed by alice like Mastodon signs."""
        body = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
        headers = self.headers_for(
            url,
            body,
            covered=covered,
            date=date,
            content_type=content_type,
            as_instance=as_instance,
        )
        headers["User-Agent"] = "http.rb/5.2.0 (Mastodon/4.4.0; +http://mastodon.test/)"
        return await self.http.post(url, content=body, headers=headers)

    async def fetch_actor(self, actor_id: str) -> dict[str, Any]:
        headers = sign_headers(
            "GET",
            actor_id,
            None,
            key=self.instance_key,
            key_id=INSTANCE_KEY,
            covered=("(request-target)", "host", "date", "accept"),
            accept=ACTIVITY_JSON,
        )
        response = await self.http.get(actor_id, headers=headers)
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document

    def follow_activity(self, target: str) -> dict[str, Any]:
        return {
            "@context": AS_CONTEXT,
            "id": f"{BASE}/{uuid.uuid4()}",
            "type": "Follow",
            "actor": ALICE,
            "object": target,
        }

    async def follow(
        self, target: str, *, covered: tuple[str, ...] = MASTODON_44
    ) -> tuple[dict[str, Any], httpx.Response]:
        """Follow `target` (an actor id): the Follow goes to its personal inbox."""
        document = await self.fetch_actor(target)
        follow = self.follow_activity(target)
        return follow, await self.post(document["inbox"], follow, covered=covered)

    def note_create(
        self, in_reply_to: str, *, mention: str | None = None, text: str = "Thank you."
    ) -> dict[str, Any]:
        sid = self.next_id()
        note_id = f"{ALICE}/statuses/{sid}"
        iso = _utc(self.clock()).strftime("%Y-%m-%dT%H:%M:%SZ")
        note: dict[str, Any] = {
            "id": note_id,
            "type": "Note",
            "summary": None,
            "inReplyTo": in_reply_to,
            "published": iso,
            "url": f"{BASE}/@alice/{sid}",
            "attributedTo": ALICE,
            "to": [PUBLIC],
            "cc": [f"{ALICE}/followers", *([mention] if mention else [])],
            "sensitive": False,
            "content": f"<p>{text}</p>",
            "contentMap": {"en": f"<p>{text}</p>"},
            "attachment": [],
            "tag": [{"type": "Mention", "href": mention}] if mention else [],
            "replies": {
                "id": f"{note_id}/replies",
                "type": "Collection",
                "first": {
                    "type": "CollectionPage",
                    "next": f"{note_id}/replies?only_other_accounts=true&page=true",
                    "partOf": f"{note_id}/replies",
                    "items": [],
                },
            },
        }
        self.statuses[note_id] = note
        return {
            "@context": AS_CONTEXT,
            "id": f"{note_id}/activity",
            "type": "Create",
            "actor": ALICE,
            "published": iso,
            "to": note["to"],
            "cc": note["cc"],
            "object": note,
        }

    async def reply(
        self,
        in_reply_to: str,
        shared_inbox: str,
        *,
        mention: str | None = None,
        covered: tuple[str, ...] = MASTODON_44,
    ) -> tuple[dict[str, Any], httpx.Response]:
        """A public reply (Create{Note}) delivered to a shared inbox."""
        create = self.note_create(in_reply_to, mention=mention)
        return create, await self.post(shared_inbox, create, covered=covered)

    def activities(self, kind: str) -> list[dict[str, Any]]:
        return [r.activity for r in self.received if r.activity.get("type") == kind]
