"""Requests recorded from real servers (tests/fixtures/captured-requests.md) parse and pass policy.

The senders' keys were not kept, so the crypto cannot pass; every check before it must. Bodies
are stored as JSON; where `json.dumps(body)` reproduces the sent bytes (the Digest says so) the
whole pipeline runs and must stop only at SignatureInvalid.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import re
from base64 import b64encode
from pathlib import Path
from typing import Any

import pytest

from activitypub.cavage import parse_signature_header, verify_cavage
from activitypub.digest import verify_digest
from activitypub.errors import SignatureInvalid
from activitypub.keys import generate_rsa

CAPTURED = Path(__file__).resolve().parents[1] / "fixtures" / "captured-requests.md"


def _sections() -> list[tuple[str, dict[str, Any]]]:
    if not CAPTURED.exists():
        return []
    text = CAPTURED.read_text()
    found = re.findall(r"^## (.+?)\n```json\n(.*?)\n```", text, re.S | re.M)
    return [(title, json.loads(block)) for title, block in found]


SIGNED = [(title, data) for title, data in _sections() if "signature" in data["headers"]]
pytestmark = pytest.mark.skipif(not SIGNED, reason="captured requests not available")
OTHER_KEY = generate_rsa().public_key()


@pytest.mark.parametrize(("title", "data"), SIGNED, ids=[title for title, _ in SIGNED])
def test_captured_signature_headers_parse(title: str, data: dict[str, Any]) -> None:
    parsed = parse_signature_header(data["headers"]["signature"])
    assert parsed.algorithm == "rsa-sha256"
    assert parsed.key_id.startswith("http")
    assert len(parsed.signature) == 256  # RSA-2048
    assert "(request-target)" in parsed.headers and "host" in parsed.headers
    expected = data.get("verify") or {}
    if "keyId" in expected:
        assert parsed.key_id == expected["keyId"]
        assert list(parsed.headers) == expected["headers"]


def _reproduced_body(data: dict[str, Any]) -> bytes | None:
    digest = data["headers"].get("digest")
    if digest is None or "body" not in data:
        return None
    body = json.dumps(data["body"]).encode()
    sent = digest.partition("=")[2]
    return body if b64encode(hashlib.sha256(body).digest()).decode() == sent else None


@pytest.mark.parametrize(("title", "data"), SIGNED, ids=[title for title, _ in SIGNED])
def test_captured_requests_pass_everything_but_the_unknown_key(
    title: str, data: dict[str, Any]
) -> None:
    headers = data["headers"]
    method = data.get("method", "GET")
    path = data.get("path", "/actor")
    if method == "POST":
        body = _reproduced_body(data)
        if body is None:
            pytest.skip("the stored JSON does not reproduce the bytes that were sent")
        verify_digest(headers["digest"], body)  # lower-case sha-256= from bovine included
    else:
        body = b""
    sent_at = email.utils.parsedate_to_datetime(headers["date"]).timestamp()
    with pytest.raises(SignatureInvalid):
        verify_cavage(method, path, headers, body, OTHER_KEY, clock=lambda: sent_at + 2)


def test_lower_case_digest_from_bovine_is_among_the_captures() -> None:
    digests = [data["headers"].get("digest", "") for _, data in SIGNED]
    assert any(d.startswith("sha-256=") for d in digests)
    assert any(d.startswith("SHA-256=") for d in digests)
