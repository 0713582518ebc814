"""Digest (RFC 3230) and Content-Digest (RFC 9530)."""

from __future__ import annotations

import pytest

from activitypub.digest import (
    make_content_digest,
    make_digest,
    verify_content_digest,
    verify_digest,
)
from activitypub.errors import DigestMismatch

BODY = b'{"hello": "world"}'
SHA256 = "X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE="
SHA512 = "WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew=="


def test_make_digest_has_exactly_the_casing_peers_compare() -> None:
    assert make_digest(BODY) == f"SHA-256={SHA256}"


@pytest.mark.parametrize(
    "header",
    [
        f"SHA-256={SHA256}",
        f"sha-256={SHA256}",
        f"Sha-256={SHA256}",
        f"MD5=abc, SHA-256={SHA256}",
        f"SHA-256={SHA256},SHA-512={SHA512}",
        f"sha-512={SHA512}",
    ],
)
def test_verify_digest_accepts(header: str) -> None:
    verify_digest(header, BODY)


@pytest.mark.parametrize(
    "header",
    [
        f"SHA-256={SHA256}",  # of another body below
        "MD5=XrY7u+Ae7tCTyyK7j1rNww==",  # only unsupported
        "SHA=abc",
        f"SHA-256={SHA256[:-2]}",  # bad base64
        f"SHA-256={SHA256},SHA-512={SHA256}",  # one matches, another contradicts it
        "SHA-256",
    ],
)
def test_verify_digest_refuses(header: str) -> None:
    body = b"other" if header == f"SHA-256={SHA256}" else BODY
    with pytest.raises(DigestMismatch):
        verify_digest(header, body)


def test_content_digest_make_and_verify() -> None:
    assert make_content_digest(BODY) == f"sha-256=:{SHA256}:"
    assert make_content_digest(BODY, "sha-512") == f"sha-512=:{SHA512}:"
    verify_content_digest(f"sha-256=:{SHA256}:", BODY)
    verify_content_digest(f"sha-512=:{SHA512}:, sha-256=:{SHA256}:", BODY)
    verify_content_digest(f"md5=:AAAA:, sha-512=:{SHA512}:", BODY)
    with pytest.raises(ValueError):
        make_content_digest(BODY, "md5")


@pytest.mark.parametrize(
    "header",
    [
        f"sha-256=:{SHA256}:",  # against another body
        "md5=:AAAA:",
        f"sha-256={SHA256}",  # a token, not a byte sequence
        f"sha-256=:{SHA256}",  # unterminated
        f"SHA-256=:{SHA256}:",  # keys are lower case in structured fields
        f"sha-256=:{SHA256}:, sha-256=:{SHA256}:",
    ],
)
def test_content_digest_refuses(header: str) -> None:
    body = b"other" if header == f"sha-256=:{SHA256}:" else BODY
    with pytest.raises(DigestMismatch):
        verify_content_digest(header, body)
