"""Body digests: `Digest` (RFC 3230, what Cavage signatures cover) and `Content-Digest` (RFC 9530).

We always send `Digest: SHA-256=<base64>` with exactly that casing (snac and microblog.pub
compare it byte for byte) and accept any casing of the algorithm name (bovine sends `sha-256=`).
When several supported digests are given, every one of them must match: a body that matches
one digest and contradicts another has been tampered with or mislabelled.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable

from .errors import DigestMismatch
from .sfv import InnerList, SfvError, parse_dictionary, serialize_dictionary
from .sfv import Item as SfItem

_HASHES: dict[str, Callable[[bytes], bytes]] = {
    "sha-256": lambda body: hashlib.sha256(body).digest(),
    "sha-512": lambda body: hashlib.sha512(body).digest(),
}


def make_digest(body: bytes) -> str:
    """The `Digest` header value for a body: `SHA-256=<base64>`."""
    return "SHA-256=" + base64.b64encode(hashlib.sha256(body).digest()).decode("ascii")


def verify_digest(header: str, body: bytes) -> None:
    """Check a `Digest` header against the body; raise DigestMismatch unless it matches.

    Algorithm names are case-insensitive; unknown algorithms (md5, sha ...) are skipped, but at
    least one supported algorithm must be present.
    """
    matched = False
    for part in header.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            raise DigestMismatch("Digest entry without '='")
        hasher = _HASHES.get(name.strip().lower())
        if hasher is None:
            continue
        try:
            expected = base64.b64decode(value.strip(), validate=True)
        except binascii.Error as exc:
            raise DigestMismatch(f"Digest {name} is not valid base64") from exc
        if not hmac.compare_digest(expected, hasher(body)):
            raise DigestMismatch(f"body does not match Digest {name}")
        matched = True
    if not matched:
        raise DigestMismatch("Digest carries no supported algorithm (sha-256, sha-512)")


def make_content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The `Content-Digest` header value for a body, e.g. `sha-256=:<base64>:`."""
    hasher = _HASHES.get(algorithm)
    if hasher is None:
        raise ValueError(f"unsupported Content-Digest algorithm {algorithm!r}")
    return serialize_dictionary({algorithm: SfItem(hasher(body))})


def verify_content_digest(header: str, body: bytes) -> None:
    """Check a `Content-Digest` header against the body; raise DigestMismatch unless it matches."""
    try:
        members = parse_dictionary(header)
    except SfvError as exc:
        raise DigestMismatch(f"Content-Digest cannot be parsed: {exc}") from exc
    matched = False
    for name, member in members.items():
        hasher = _HASHES.get(name)
        if hasher is None:
            continue
        if isinstance(member, InnerList) or not isinstance(member.value, bytes):
            raise DigestMismatch(f"Content-Digest {name} is not a byte sequence")
        if not hmac.compare_digest(member.value, hasher(body)):
            raise DigestMismatch(f"body does not match Content-Digest {name}")
        matched = True
    if not matched:
        raise DigestMismatch("Content-Digest carries no supported algorithm (sha-256, sha-512)")
