"""HttpSignatureAuth signs what httpx sends; a MockTransport handler verifies it for real."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from activitypub.auth import HttpSignatureAuth
from activitypub.errors import SignatureError
from activitypub.keys import PrivateKey, generate_ed25519, generate_rsa
from activitypub.sigcore import sign_bytes
from activitypub.signatures import Mode, verify_request_with_key

RSA_KEY = generate_rsa()
ED_KEY = generate_ed25519()
NOW = 1_800_000_000.0
KEY_ID = "https://a.test/actor#main-key"


def verifying_handler(
    key: PrivateKey, seen: list[httpx.Request]
) -> Callable[[httpx.Request], httpx.Response]:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        try:
            result = verify_request_with_key(
                request.method,
                request.url.raw_path.decode("ascii"),
                request.headers.multi_items(),
                request.content,
                key.public_key(),
                clock=lambda: NOW + 2,
                scheme=request.url.scheme,
            )
        except SignatureError as exc:
            return httpx.Response(401, json={"error": str(exc)})
        return httpx.Response(202, json={"key_id": result.key_id, "scheme": result.scheme})

    return handle


@pytest.mark.parametrize("mode", ["cavage", "rfc9421"])
@pytest.mark.parametrize("key", [RSA_KEY, ED_KEY], ids=["rsa", "ed25519"])
async def test_signed_post_and_get_verify(mode: Mode, key: PrivateKey) -> None:
    seen: list[httpx.Request] = []
    auth = HttpSignatureAuth(KEY_ID, key, mode=mode, clock=lambda: NOW)
    transport = httpx.MockTransport(verifying_handler(key, seen))
    async with httpx.AsyncClient(transport=transport, auth=auth) as client:
        response = await client.post(
            "https://b.test:8443/users/bob/inbox",
            content=b'{"type": "Follow"}',
            headers={"Content-Type": "application/activity+json"},
        )
        assert response.status_code == 202, response.text
        assert response.json() == {"key_id": KEY_ID, "scheme": mode}
        response = await client.get(
            "https://b.test/users/bob?page=1", headers={"Accept": "application/activity+json"}
        )
        assert response.status_code == 202, response.text
    post, get = seen
    assert post.headers["host"] == "b.test:8443"
    assert get.headers["host"] == "b.test"
    assert post.headers["date"] == "Fri, 15 Jan 2027 08:00:00 GMT"
    if mode == "cavage":
        assert post.headers["digest"].startswith("SHA-256=")
        assert "digest" not in get.headers
    else:
        assert post.headers["content-digest"].startswith("sha-256=:")
        assert "signature-input" in get.headers


def test_sync_client_and_a_tampered_body_is_refused() -> None:
    seen: list[httpx.Request] = []
    auth = HttpSignatureAuth(KEY_ID, RSA_KEY, clock=lambda: NOW)

    def tamper(request: httpx.Request) -> httpx.Response:
        forged = httpx.Request(
            request.method, request.url, headers=request.headers, content=b'{"type": "Block"}'
        )
        return verifying_handler(RSA_KEY, seen)(forged)

    with httpx.Client(
        transport=httpx.MockTransport(verifying_handler(RSA_KEY, seen)), auth=auth
    ) as client:
        assert client.post("http://b.test/inbox", content=b"{}").status_code == 202
    with httpx.Client(transport=httpx.MockTransport(tamper), auth=auth) as client:
        response = client.post("http://b.test/inbox", content=b"{}")
        assert response.status_code == 401 and "Digest" in response.json()["error"]


def test_an_existing_date_is_kept() -> None:
    request = httpx.Request(
        "GET", "https://b.test/x", headers={"Date": "Fri, 15 Jan 2027 07:59:00 GMT"}
    )
    HttpSignatureAuth(KEY_ID, RSA_KEY, clock=lambda: NOW).sign(request)
    assert request.headers.get_list("date") == ["Fri, 15 Jan 2027 07:59:00 GMT"]
    assert 'headers="(request-target) host date"' in request.headers["signature"]


@pytest.mark.parametrize("mode", ["cavage", "rfc9421"])
@pytest.mark.parametrize("key", [RSA_KEY, ED_KEY], ids=["rsa", "ed25519"])
async def test_a_signature_made_elsewhere_gives_the_same_request(
    mode: Mode, key: PrivateKey
) -> None:
    # `sign_async` hands the private-key operation out (the app's signing processes); what is
    # sent must be the request the in-place signer would have sent, and verify.
    handed_out: list[tuple[str, bytes]] = []

    async def elsewhere(algorithm: str, data: bytes) -> bytes:
        handed_out.append((algorithm, data))
        return sign_bytes(algorithm, key, data)

    url, body = "https://b.test:8443/users/bob/inbox", b'{"type": "Follow"}'
    sent: dict[str, list[httpx.Request]] = {}
    for name, auth in (
        ("in place", HttpSignatureAuth(KEY_ID, key, mode=mode, clock=lambda: NOW)),
        (
            "elsewhere",
            HttpSignatureAuth(KEY_ID, key, mode=mode, clock=lambda: NOW, sign_async=elsewhere),
        ),
    ):
        seen = sent.setdefault(name, [])
        transport = httpx.MockTransport(verifying_handler(key, seen))
        async with httpx.AsyncClient(transport=transport, auth=auth) as client:
            response = await client.post(url, content=body)
            assert response.status_code == 202, response.text
    assert len(handed_out) == 1
    in_place, elsewhere_sent = sent["in place"][0], sent["elsewhere"][0]
    if isinstance(key, rsa.RSAPrivateKey):  # PKCS#1 v1.5 is deterministic: byte for byte
        assert elsewhere_sent.headers.multi_items() == in_place.headers.multi_items()


async def test_headers_for_signs_a_request_built_without_httpx() -> None:
    auth = HttpSignatureAuth(KEY_ID, RSA_KEY, clock=lambda: NOW)
    body = b'{"type": "Create"}'
    given = [("Content-Type", "application/activity+json")]
    added = await auth.headers_for("POST", "http://b.test:8080/inbox?x=1", given, body)
    assert added["Host"] == "b.test:8080" and "Digest" in added
    result = verify_request_with_key(
        "POST",
        "/inbox?x=1",
        [*given, *added.items()],
        body,
        RSA_KEY.public_key(),
        clock=lambda: NOW + 2,
    )
    assert result.key_id == KEY_ID
    with pytest.raises(SignatureError):
        verify_request_with_key(
            "POST",
            "/inbox?x=1",
            [*given, *added.items()],
            b"{}",
            RSA_KEY.public_key(),
            clock=lambda: NOW + 2,
        )
