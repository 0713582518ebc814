"""A hostile remote for the battery: `evil.test` (or any host), signing however it likes.

`Attacker` is a small starlette app on the factory's routing transport (or behind the guarded
client's recording connector, see conftest). It serves actor documents with their keys (keys can
be rotated), WebFinger, inboxes that answer 202 and record what they got, and any canned document
a test puts in `documents` (a status, a content type, a body, a redirect). Every request it is
sent is recorded in `requests`.

It signs with `cavage()` (any algorithm name, any covered headers, any extra or duplicated
parameter, any Date) or `rfc9421()` (any components, with or without `created`), so a test can
build exactly the broken signature it wants. Everything stays inside the process: no sockets.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from activitypub.digest import make_content_digest
from activitypub.keys import public_to_pem
from activitypub.rfc9421_base import build_context, make_signature_input, signature_base
from activitypub.sfv import Item, serialize_dictionary
from activitypub.sigcore import RSA_V1_5_SHA256, format_http_date, sign_bytes
from tests.support.keys import pooled_key
from tests.support.mastodon import sha256_digest

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
ACTIVITY_JSON = "application/activity+json"
COVERED = ("(request-target)", "host", "date", "digest", "content-type")
_key_numbers = itertools.count(2)  # pooled keys 0 and 1 are left to other tests' helpers


@dataclass
class Persona:
    """One actor the attacker serves: its current key and anything to merge into its document."""

    name: str
    key: rsa.RSAPrivateKey
    key_suffix: str = "#main-key"
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Canned:
    status: int = 200
    body: bytes = b""
    content_type: str | None = ACTIVITY_JSON
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class Attacker:
    """The remote at `host`: actors under /users/NAME, canned documents, signing helpers."""

    def __init__(self, host: str = "evil.test", *, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.base = f"http://{host}"
        self.clock = clock
        self.personas: dict[str, Persona] = {}
        self.documents: dict[str, Canned] = {}
        self.requests: list[Seen] = []
        self.delays: dict[str, float] = {}  # path -> seconds to wait before answering
        self.app = Starlette(
            routes=[Route("/{path:path}", self._serve, methods=["GET", "POST", "HEAD"])]
        )
        self.add("eve")

    # ------------------------------------------------------------------------- personas

    def add(self, who: str, **extra: Any) -> Persona:
        persona = Persona(who, pooled_key(next(_key_numbers)), extra=extra)
        self.personas[who] = persona
        return persona

    def spare_key(self) -> rsa.RSAPrivateKey:
        """A key none of this attacker's actors publishes."""
        used = {id(p.key) for p in self.personas.values()}
        return next(k for k in map(pooled_key, range(8)) if id(k) not in used)

    def actor_id(self, who: str = "eve") -> str:
        return f"{self.base}/users/{who}"

    def key_id(self, who: str = "eve") -> str:
        return self.actor_id(who) + self.personas[who].key_suffix

    def rotate(self, who: str = "eve") -> rsa.RSAPrivateKey:
        """Give `who` a new key (the old one is returned), as a real server's key rotation."""
        old = self.personas[who].key
        self.personas[who].key = pooled_key(next(_key_numbers))
        return old

    def actor(self, who: str = "eve") -> dict[str, Any]:
        persona = self.personas[who]
        actor_id = self.actor_id(who)
        document: dict[str, Any] = {
            "@context": [AS_CONTEXT, "https://w3id.org/security/v1"],
            "id": actor_id,
            "type": "Person",
            "preferredUsername": who,
            "name": who.title(),
            "summary": "<p>Just a peer.</p>",
            "inbox": f"{actor_id}/inbox",
            "outbox": f"{actor_id}/outbox",
            "followers": f"{actor_id}/followers",
            "url": f"{self.base}/@{who}",
            "publicKey": {
                "id": actor_id + persona.key_suffix,
                "owner": actor_id,
                "publicKeyPem": public_to_pem(persona.key),
            },
            "endpoints": {"sharedInbox": f"{self.base}/inbox"},
        }
        document.update(persona.extra)
        return document

    def serve(self, url_or_path: str, document: Any, **kwargs: Any) -> None:
        """Serve `document` (JSON-encoded unless bytes) at a path of this host."""
        path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        self.documents[path] = Canned(body=body, **kwargs)

    def redirect(self, url_or_path: str, location: str, status: int = 302) -> None:
        path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path
        self.documents[path] = Canned(status=status, headers={"Location": location})

    async def _serve(self, request: Request) -> Response:
        body = await request.body()
        path = request.url.path
        self.requests.append(Seen(request.method, path, dict(request.headers), body))
        if path in self.delays:
            await asyncio.sleep(self.delays[path])
        if request.method == "POST":
            return Response(status_code=202)
        canned = self.documents.get(path)
        if canned is not None:
            return Response(
                canned.body,
                status_code=canned.status,
                headers=canned.headers,
                media_type=canned.content_type,
            )
        if path.startswith("/users/") and path.count("/") == 2:
            name = path.rsplit("/", 1)[1]
            if name in self.personas:
                return Response(json.dumps(self.actor(name)), media_type=ACTIVITY_JSON)
        if path == "/.well-known/webfinger":
            resource = request.query_params.get("resource", "")
            name = resource.removeprefix("acct:").split("@")[0]
            if name in self.personas:
                return JSONResponse(
                    {
                        "subject": f"acct:{name}@{self.host}",
                        "links": [
                            {"rel": "self", "type": ACTIVITY_JSON, "href": self.actor_id(name)}
                        ],
                    },
                    media_type="application/jrd+json",
                )
        return JSONResponse({"error": "not found"}, status_code=404)

    def register(self, factory: Any) -> Attacker:
        factory.transport.add(self.host, httpx.ASGITransport(app=self.app))
        return self

    # ------------------------------------------------------------------------- activities

    def new_id(self, who: str = "eve") -> str:
        return f"{self.actor_id(who)}/activities/{uuid.uuid4()}"

    def activity(self, kind: str, obj: Any, who: str = "eve", **extra: Any) -> dict[str, Any]:
        document = {
            "@context": AS_CONTEXT,
            "id": self.new_id(who),
            "type": kind,
            "actor": self.actor_id(who),
            "object": obj,
        }
        document.update(extra)
        return document

    def note(
        self, in_reply_to: str | None, content: str, who: str = "eve", **extra: Any
    ) -> dict[str, Any]:
        note_id = f"{self.actor_id(who)}/notes/{uuid.uuid4()}"
        note: dict[str, Any] = {
            "id": note_id,
            "type": "Note",
            "attributedTo": self.actor_id(who),
            "content": content,
            "published": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
            "to": [PUBLIC],
            "cc": [f"{self.actor_id(who)}/followers"],
        }
        if in_reply_to is not None:
            note["inReplyTo"] = in_reply_to
        note.update(extra)
        return note

    def create(self, obj: dict[str, Any], who: str = "eve", **extra: Any) -> dict[str, Any]:
        return self.activity(
            "Create", obj, who, id=f"{obj['id']}/activity", to=obj.get("to", [PUBLIC]), **extra
        )

    # ------------------------------------------------------------------------- signing

    def cavage(
        self,
        url: str,
        body: bytes,
        *,
        who: str = "eve",
        method: str = "POST",
        key: rsa.RSAPrivateKey | None = None,
        key_id: str | None = None,
        covered: Sequence[str] = COVERED,
        algorithm: str | None = "rsa-sha256",
        date: float | None = None,
        params: str = "",
        content_type: str = ACTIVITY_JSON,
        host: str | None = None,
        created: int | None = None,
        expires: int | None = None,
    ) -> dict[str, str]:
        """Signed headers for a request; `params` is appended raw to the Signature value."""
        parts = urlsplit(url)
        values = {
            "host": host or parts.netloc,
            "date": format_http_date(self.clock() if date is None else date),
            "digest": sha256_digest(body),
            "content-type": content_type,
        }
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = []
        for header in covered:
            if header == "(request-target)":
                lines.append(f"(request-target): {method.lower()} {target}")
            elif header == "(created)":
                lines.append(f"(created): {created}")
            elif header == "(expires)":
                lines.append(f"(expires): {expires}")
            else:
                lines.append(f"{header}: {values[header]}")
        signer = key or self.personas[who].key
        raw = signer.sign("\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
        fields = [f'keyId="{key_id or self.key_id(who)}"']
        if algorithm is not None:
            fields.append(f'algorithm="{algorithm}"')
        if created is not None:
            fields.append(f"created={created}")
        if expires is not None:
            fields.append(f"expires={expires}")
        fields.append(f'headers="{" ".join(covered)}"')
        fields.append(f'signature="{base64.b64encode(raw).decode()}"')
        headers = {k.title(): v for k, v in values.items()}
        headers["Signature"] = ",".join(fields) + params
        return headers

    def rfc9421(
        self,
        url: str,
        body: bytes,
        *,
        who: str = "eve",
        components: Sequence[str] = ("@method", "@target-uri", "content-digest"),
        created: int | bool | None = True,
        content_type: str = ACTIVITY_JSON,
    ) -> dict[str, str]:
        """RFC 9421 headers; `created=None` leaves `created` out, True means now."""
        headers = {
            "Host": urlsplit(url).netloc,
            "Content-Type": content_type,
            "Content-Digest": make_content_digest(body),
            "Date": format_http_date(self.clock()),
        }
        params: dict[str, Any] = {}
        if created is True:
            params["created"] = int(self.clock())
        elif isinstance(created, int) and created is not False:
            params["created"] = created
        params["keyid"] = self.key_id(who)
        params["alg"] = RSA_V1_5_SHA256
        sig_input = make_signature_input("sig1", list(components), params)
        ctx = build_context("POST", headers, target_uri=url)
        raw = sign_bytes(
            RSA_V1_5_SHA256, self.personas[who].key, signature_base(sig_input, ctx).encode()
        )
        headers["Signature-Input"] = f"sig1={sig_input.serialized}"
        headers["Signature"] = serialize_dictionary({"sig1": Item(raw)})
        return headers

    async def post(
        self,
        client: httpx.AsyncClient,
        url: str,
        activity: Any,
        *,
        headers: dict[str, str] | None = None,
        **sign: Any,
    ) -> httpx.Response:
        """POST `activity` (a document, or raw bytes) to `url`, signed with `cavage(**sign)`."""
        body = activity if isinstance(activity, bytes) else json.dumps(activity).encode()
        signed = headers if headers is not None else self.cavage(url, body, **sign)
        return await client.post(url, content=body, headers=signed)
