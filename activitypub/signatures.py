"""Sign and verify HTTP requests the way the fediverse does: the entry points for the app.

`verify_request` picks the scheme (a `Signature-Input` header means RFC 9421, otherwise the
Cavage draft), applies the fediverse policy and returns who signed. `sign_request_headers`
gives the headers to add to an outgoing request (Date, Host, Digest or Content-Digest and the
signature). The schemes themselves live in `cavage.py` and `rfc9421.py`, digests in `digest.py`.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Mapping, Sequence
from typing import Literal, TypeAlias

from .cavage import (
    BODY_METHODS,
    parse_signature_header,
    unsigned_cavage,
    verify_cavage,
    verify_cavage_async,
)
from .digest import make_content_digest, make_digest, verify_content_digest, verify_digest
from .errors import SignatureMalformed, SignatureMissing
from .keys import PrivateKey, PublicKey
from .rfc9421 import unsigned_rfc9421, verify_rfc9421, verify_rfc9421_async
from .rfc9421_base import parse_signature_input
from .sigcore import (
    DEFAULT_WINDOW,
    Clock,
    HeaderInput,
    Headers,
    KeyResolver,
    Unsigned,
    VerifiedSignature,
    format_http_date,
)

Mode: TypeAlias = Literal["cavage", "rfc9421"]


def detect_scheme(headers: HeaderInput | Headers) -> Mode:
    """Which scheme signed a request: `rfc9421` if it has Signature-Input, else `cavage`.

    Raises SignatureMissing when there is no signature at all.
    """
    view = headers if isinstance(headers, Headers) else Headers(headers)
    if "signature-input" in view:
        return "rfc9421"
    if "signature" in view or any(
        value[:10].lower() == "signature " for value in view.get_all("authorization")
    ):
        return "cavage"
    raise SignatureMissing("the request is not signed")


async def verify_request(
    method: str,
    path: str,
    headers: HeaderInput,
    body: bytes,
    key_resolver: KeyResolver,
    *,
    clock: Clock = time.time,
    window: float = DEFAULT_WINDOW,
    host_override: str | None = None,
    target_uri: str | None = None,
    scheme: str = "https",
) -> VerifiedSignature:
    """Verify an inbound request's signature (either scheme) under the fediverse policy.

    `path` is the request target as received (path and query). Behind a proxy, pass the public
    host as `host_override` (used for Cavage `host` and RFC 9421 `@authority`) or the public URL
    as `target_uri` (RFC 9421). The key resolver is called once, with the keyId, and only after
    the cheap checks (coverage, time, digest) passed. Raises a SignatureError subclass.
    """
    view = Headers(headers)
    if detect_scheme(view) == "rfc9421":
        return await verify_rfc9421_async(
            method,
            headers,
            body,
            key_resolver,
            target_uri=target_uri,
            path=path,
            authority=host_override,
            scheme=scheme,
            clock=clock,
            window=window,
        )
    return await verify_cavage_async(
        method,
        path,
        headers,
        body,
        key_resolver,
        clock=clock,
        window=window,
        host_override=host_override,
    )


def verify_request_with_key(
    method: str,
    path: str,
    headers: HeaderInput,
    body: bytes,
    key: PublicKey,
    *,
    clock: Clock = time.time,
    window: float = DEFAULT_WINDOW,
    host_override: str | None = None,
    target_uri: str | None = None,
    scheme: str = "https",
) -> VerifiedSignature:
    """`verify_request` with the public key already in hand (synchronous)."""
    view = Headers(headers)
    if detect_scheme(view) == "rfc9421":
        return verify_rfc9421(
            method,
            headers,
            body,
            key,
            target_uri=target_uri,
            path=path,
            authority=host_override,
            scheme=scheme,
            clock=clock,
            window=window,
        )
    return verify_cavage(
        method,
        path,
        headers,
        body,
        key,
        clock=clock,
        window=window,
        host_override=host_override,
    )


def sign_request_headers(
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    *,
    key_id: str,
    private_key: PrivateKey,
    mode: Mode = "cavage",
    clock: Clock = time.time,
    covered: Sequence[str] | None = None,
) -> dict[str, str]:
    """The headers to set on an outgoing request so that it is signed.

    Adds Date and Host when absent (Host is the URL's netloc, port kept as sent), a digest of
    the body when the method carries one or the body is not empty (`Digest` for Cavage,
    `Content-Digest` for RFC 9421), then the signature header(s).
    """
    unsigned = unsigned_request_headers(
        method,
        url,
        headers,
        body,
        key_id=key_id,
        private_key=private_key,
        mode=mode,
        clock=clock,
        covered=covered,
    )
    return unsigned.sign_with(private_key)


def unsigned_request_headers(
    method: str,
    url: str,
    headers: HeaderInput,
    body: bytes,
    *,
    key_id: str,
    private_key: PrivateKey,
    mode: Mode = "cavage",
    clock: Clock = time.time,
    covered: Sequence[str] | None = None,
) -> Unsigned[dict[str, str]]:
    """`sign_request_headers` up to the private-key operation, which the caller may run
    elsewhere (`Unsigned.finish` then gives the same headers)."""
    view = Headers(headers)
    parts = urllib.parse.urlsplit(url)
    added: dict[str, str] = {}
    if "date" not in view:
        added["Date"] = format_http_date(clock())
    if "host" not in view:
        added["Host"] = parts.netloc
    has_body = method.upper() in BODY_METHODS or bool(body)
    if mode == "cavage":
        if has_body and "digest" not in view:
            added["Digest"] = make_digest(body)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        pairs = [*_pairs(headers), *added.items()]
        cavage = unsigned_cavage(
            method, path, pairs, key_id=key_id, private_key=private_key, covered=covered
        )

        def with_signature(raw: bytes) -> dict[str, str]:
            return {**added, "Signature": cavage.finish(raw)}

        return Unsigned(cavage.algorithm, cavage.data, with_signature)
    if has_body and "content-digest" not in view:
        added["Content-Digest"] = make_content_digest(body)
    pairs = [*_pairs(headers), *added.items()]
    rfc9421 = unsigned_rfc9421(
        method,
        pairs,
        target_uri=url,
        key_id=key_id,
        private_key=private_key,
        created=int(clock()),
        components=covered,
    )

    def with_signatures(raw: bytes) -> dict[str, str]:
        signature_input, signature = rfc9421.finish(raw)
        return {**added, "Signature-Input": signature_input, "Signature": signature}

    return Unsigned(rfc9421.algorithm, rfc9421.data, with_signatures)


def _pairs(headers: HeaderInput) -> list[tuple[str, str]]:
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


__all__ = [
    "DEFAULT_WINDOW",
    "Clock",
    "HeaderInput",
    "KeyResolver",
    "Mode",
    "VerifiedSignature",
    "detect_scheme",
    "make_content_digest",
    "make_digest",
    "parse_signature_header",
    "sign_request_headers",
    "unsigned_request_headers",
    "verify_content_digest",
    "verify_digest",
    "verify_request",
    "verify_request_with_key",
]


def claimed_key_id(headers: HeaderInput) -> str:
    """The keyId a request claims to be signed with, parsed but NOT verified.

    For cheap refusals before any key is fetched (a blocked domain). Raises SignatureMissing or
    SignatureMalformed.
    """
    view = Headers(headers)
    if detect_scheme(view) == "rfc9421":
        inputs = parse_signature_input(view.get("signature-input") or "")
        for signature_input in inputs.values():
            key_id = signature_input.params.get("keyid")
            if isinstance(key_id, str) and key_id:
                return key_id
        raise SignatureMalformed("Signature-Input names no keyid")
    value = view.get("signature")
    if value is None:
        authorization = view.get_all("authorization")
        value = authorization[0][10:] if authorization else ""
    return parse_signature_header(value).key_id
