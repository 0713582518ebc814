"""The app-facing API (verify_request, sign_request_headers) and the RFC 9421 fediverse policy."""

from __future__ import annotations

import base64
import functools

import pytest

from activitypub.digest import make_content_digest
from activitypub.errors import (
    DigestMismatch,
    SignatureExpired,
    SignatureInvalid,
    SignatureMalformed,
    SignatureMissing,
    SignaturePolicyError,
)
from activitypub.keys import PrivateKey, PublicKey, generate_ed25519, generate_rsa, public_key_of
from activitypub.rfc9421 import (
    build_context,
    make_signature_input,
    parse_signature_input,
    sign_rfc9421,
    signature_base,
    verify_rfc9421,
)
from activitypub.sfv import BareItem
from activitypub.sigcore import KeyResolver, algorithm_for_key, sign_bytes
from activitypub.signatures import (
    Mode,
    detect_scheme,
    sign_request_headers,
    verify_request,
    verify_request_with_key,
)

RSA_KEY = generate_rsa()
ED_KEY = generate_ed25519()
NOW = 1_800_000_000.0
KEY_ID = "https://b.test/users/bob#main-key"
URL = "https://a.test/users/alice/inbox?x=1"
BODY = b'{"type": "Follow"}'


def now() -> float:
    return NOW


def resolver_for(key: PublicKey, asked: list[str] | None = None) -> KeyResolver:
    async def resolve(key_id: str) -> PublicKey:
        if asked is not None:
            asked.append(key_id)
        return key

    return resolve


def signed(
    method: str = "POST",
    *,
    mode: Mode = "cavage",
    key: PrivateKey = RSA_KEY,
    body: bytes = BODY,
    url: str = URL,
    covered: list[str] | None = None,
    extra: list[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    headers = [("Content-Type", "application/activity+json"), *(extra or [])] if body else []
    added = sign_request_headers(
        method,
        url,
        headers,
        body,
        key_id=KEY_ID,
        private_key=key,
        mode=mode,
        clock=now,
        covered=covered,
    )
    return [*headers, *added.items()]


@pytest.mark.parametrize("mode", ["cavage", "rfc9421"])
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("key", [RSA_KEY, ED_KEY], ids=["rsa", "ed25519"])
async def test_verify_request_round_trip(mode: Mode, method: str, key: PrivateKey) -> None:
    body = BODY if method == "POST" else b""
    headers = signed(method, mode=mode, key=key, body=body)
    asked: list[str] = []
    result = await verify_request(
        method,
        "/users/alice/inbox?x=1",
        headers,
        body,
        resolver_for(public_key_of(key), asked),
        clock=now,
    )
    assert result.key_id == KEY_ID and asked == [KEY_ID]
    assert result.scheme == mode
    sync = verify_request_with_key(
        method, "/users/alice/inbox?x=1", headers, body, public_key_of(key), clock=now
    )
    assert sync == result


def test_sign_request_headers_adds_what_peers_expect() -> None:
    added = dict(signed())
    assert added["Host"] == "a.test"
    assert added["Date"] == "Fri, 15 Jan 2027 08:00:00 GMT"
    assert added["Digest"].startswith("SHA-256=")
    assert 'headers="(request-target) host date digest content-type"' in added["Signature"]
    added = dict(signed(url="http://a.test:8123/inbox"))
    assert added["Host"] == "a.test:8123"
    added = dict(signed(mode="rfc9421"))
    assert added["Content-Digest"].startswith("sha-256=:")
    assert added["Signature-Input"].startswith(
        'sig1=("@method" "@target-uri" "content-digest");created=1800000000;'
        f'keyid="{KEY_ID}";alg="rsa-v1_5-sha256"'
    )
    assert "Digest" not in added


def test_detect_scheme() -> None:
    assert detect_scheme(signed()) == "cavage"
    assert detect_scheme(signed(mode="rfc9421")) == "rfc9421"
    assert detect_scheme([("Authorization", "Signature keyId=...")]) == "cavage"
    with pytest.raises(SignatureMissing):
        detect_scheme([("Host", "a.test")])


async def test_unsigned_request_is_refused_without_a_key_lookup() -> None:
    asked: list[str] = []
    with pytest.raises(SignatureMissing):
        await verify_request(
            "POST",
            "/inbox",
            [("Host", "a.test")],
            BODY,
            resolver_for(RSA_KEY.public_key(), asked),
            clock=now,
        )
    assert asked == []


async def test_behind_a_proxy_rfc9421_uses_the_target_uri_given() -> None:
    headers = [(n, "127.0.0.1:8000" if n == "Host" else v) for n, v in signed(mode="rfc9421")]
    resolve = resolver_for(RSA_KEY.public_key())
    with pytest.raises(SignatureInvalid):
        await verify_request("POST", "/users/alice/inbox?x=1", headers, BODY, resolve, clock=now)
    await verify_request(
        "POST", "/users/alice/inbox?x=1", headers, BODY, resolve, clock=now, target_uri=URL
    )
    await verify_request(
        "POST", "/users/alice/inbox?x=1", headers, BODY, resolve, clock=now, host_override="a.test"
    )


def _rfc9421(
    components: list[str],
    *,
    created: int | None = int(NOW),
    expires: int | None = None,
    method: str = "POST",
    body: bytes = BODY,
    key: PrivateKey = RSA_KEY,
    label: str = "sig1",
) -> list[tuple[str, str]]:
    # Host, Date, Digest and Content-Type from our signer; the Cavage Signature is dropped.
    headers = [(n, v) for n, v in signed(method, body=body) if n != "Signature"]
    if body:
        headers.append(("Content-Digest", make_content_digest(body)))
    params: dict[str, BareItem] = {}
    if created is not None:
        params["created"] = created
    if expires is not None:
        params["expires"] = expires
    params["keyid"] = KEY_ID
    sig_input = make_signature_input(label, components, params)
    base = signature_base(sig_input, build_context(method, headers, target_uri=URL))
    raw = sign_bytes(algorithm_for_key(key), key, base.encode())
    return [
        *headers,
        ("Signature-Input", f"{label}={sig_input.serialized}"),
        ("Signature", f"{label}=:{base64.b64encode(raw).decode()}:"),
    ]


@pytest.mark.parametrize(
    "components",
    [
        ["@method", "@target-uri", "content-digest"],
        ["@method", "@authority", "@path", "@query", "content-digest"],
        ["@method", "@authority", "@request-target", "content-digest", "date", "content-type"],
    ],
)
def test_rfc9421_policy_accepts(components: list[str]) -> None:
    verify_rfc9421(
        "POST", _rfc9421(components), BODY, RSA_KEY.public_key(), target_uri=URL, clock=now
    )


@pytest.mark.parametrize(
    ("components", "created"),
    [
        (["@method", "@target-uri"], int(NOW)),  # no content-digest on a POST
        (["@target-uri", "content-digest"], int(NOW)),  # no @method
        (["@method", "@path", "content-digest"], int(NOW)),  # no authority
        (["@method", "@target-uri", "content-digest"], None),  # no created
    ],
)
def test_rfc9421_policy_refuses(components: list[str], created: int | None) -> None:
    with pytest.raises(SignaturePolicyError):
        verify_rfc9421(
            "POST",
            _rfc9421(components, created=created),
            BODY,
            RSA_KEY.public_key(),
            target_uri=URL,
            clock=now,
        )


def test_rfc9421_get_needs_no_digest_and_checks_time() -> None:
    headers = _rfc9421(["@method", "@target-uri"], method="GET", body=b"")
    verify_rfc9421("GET", headers, b"", RSA_KEY.public_key(), target_uri=URL, clock=now)
    for moment in (NOW + 3601, NOW - 3601):
        with pytest.raises(SignatureExpired):
            verify_rfc9421(
                "GET",
                headers,
                b"",
                RSA_KEY.public_key(),
                target_uri=URL,
                clock=functools.partial(float, moment),
            )
    headers = _rfc9421(["@method", "@target-uri"], method="GET", body=b"", expires=int(NOW) + 10)
    with pytest.raises(SignatureExpired):
        verify_rfc9421(
            "GET", headers, b"", RSA_KEY.public_key(), target_uri=URL, clock=lambda: NOW + 11
        )


def test_rfc9421_refusals() -> None:
    headers = _rfc9421(["@method", "@target-uri", "content-digest"])
    with pytest.raises(DigestMismatch):
        verify_rfc9421("POST", headers, b"{}", RSA_KEY.public_key(), target_uri=URL, clock=now)
    with pytest.raises(SignatureInvalid):
        verify_rfc9421("PUT", headers, BODY, RSA_KEY.public_key(), target_uri=URL, clock=now)
    with pytest.raises(SignaturePolicyError):  # alg says rsa, key is ed25519
        verify_rfc9421(
            "POST", signed(mode="rfc9421"), BODY, ED_KEY.public_key(), target_uri=URL, clock=now
        )
    weak = [
        (n, v.replace('alg="rsa-v1_5-sha256"', 'alg="hmac-sha256"'))
        for n, v in signed(mode="rfc9421")
    ]
    with pytest.raises(SignaturePolicyError):
        verify_rfc9421("POST", weak, BODY, RSA_KEY.public_key(), target_uri=URL, clock=now)
    no_sig = [(n, v) for n, v in headers if n != "Signature"]
    with pytest.raises(SignatureMissing):
        verify_rfc9421("POST", no_sig, BODY, RSA_KEY.public_key(), target_uri=URL, clock=now)
    other_label = [(n, v.replace("sig1=", "sig2=") if n == "Signature" else v) for n, v in headers]
    with pytest.raises(SignatureMalformed):
        verify_rfc9421("POST", other_label, BODY, RSA_KEY.public_key(), target_uri=URL, clock=now)


@pytest.mark.parametrize(
    "signature_input",
    [
        'sig1=("@method";req);created=1',
        'sig1=("content-digest";sf);created=1',
        'sig1=("signature";key="sig0");created=1',
        'sig1=("@status");created=1',
    ],
)
def test_unsupported_component_parameters_are_refused(signature_input: str) -> None:
    with pytest.raises(SignaturePolicyError):
        parse_signature_input(signature_input)


@pytest.mark.parametrize(
    "signature_input",
    [
        'sig1=("@Method");created=1',
        'sig1=("@method" "@method");created=1',
        "sig1=(@method);created=1",
        'sig1=("@method");created="1"',
        'sig1=("@method");keyid=1',
        'sig1=("@method");created=1;created=2',
        'sig1=("@method"), sig1=("@path")',
        "sig1=:AAAA:",
        'sig1=("@query-param")',
        'sig1=("@method"',
    ],
)
def test_malformed_signature_input_is_refused(signature_input: str) -> None:
    with pytest.raises(SignatureMalformed):
        parse_signature_input(signature_input)


def test_the_first_acceptable_label_is_verified() -> None:
    good = _rfc9421(["@method", "@target-uri", "content-digest"], label="good")
    thin = _rfc9421(["@method"], label="thin")
    headers = [(n, v) for n, v in good if n not in ("Signature-Input", "Signature")]
    headers += [
        ("Signature-Input", dict(thin)["Signature-Input"]),
        ("Signature-Input", dict(good)["Signature-Input"]),
        ("Signature", dict(thin)["Signature"] + ", " + dict(good)["Signature"]),
    ]
    result = verify_rfc9421("POST", headers, BODY, RSA_KEY.public_key(), target_uri=URL, clock=now)
    assert result.label == "good"
    with pytest.raises(SignaturePolicyError):
        verify_rfc9421(
            "POST", headers, BODY, RSA_KEY.public_key(), target_uri=URL, clock=now, label="thin"
        )


def test_sign_rfc9421_with_ed25519_and_query_param() -> None:
    headers = [("Host", "a.test")]
    signature_input, signature = sign_rfc9421(
        "GET",
        headers,
        target_uri="https://a.test/search?q=caf%C3%A9+au+lait&n=2",
        key_id=KEY_ID,
        private_key=ED_KEY,
        created=int(NOW),
        components=["@method", "@target-uri", '"@query-param";name="q"', "@scheme"],
    )
    sig_input = parse_signature_input(signature_input)["sig1"]
    base = signature_base(
        sig_input,
        build_context("GET", headers, target_uri="https://a.test/search?q=caf%C3%A9+au+lait&n=2"),
    )
    assert '"@query-param";name="q": caf%C3%A9%20au%20lait\n"@scheme": https\n' in base
    result = verify_rfc9421(
        "GET",
        [*headers, ("Signature-Input", signature_input), ("Signature", signature)],
        b"",
        ED_KEY.public_key(),
        path="/search?q=caf%C3%A9+au+lait&n=2",
        clock=now,
    )
    assert result.algorithm == "ed25519"
