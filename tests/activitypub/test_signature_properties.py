"""Properties: any request we sign verifies; any tampering or a late clock fails with a typed error.

Covers Cavage rsa-sha256, Cavage hs2019 with Ed25519, and RFC 9421 with rsa-v1_5-sha256,
rsa-pss-sha512 and ed25519. Keys come from a small pool made once for the module.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activitypub.errors import SignatureError
from activitypub.keys import PrivateKey, generate_ed25519, generate_rsa
from activitypub.rfc9421 import sign_rfc9421
from activitypub.sigcore import ED25519, RSA_PSS_SHA512, RSA_V1_5_SHA256
from activitypub.signatures import sign_request_headers, verify_request_with_key

RSA_KEY = generate_rsa()
ED_KEY = generate_ed25519()
NOW = 1_800_000_000.0
KEY_ID = "https://b.test/users/bob#main-key"

# (mode, key, RFC 9421 algorithm or None for the mode's default)
SCHEMES: list[tuple[str, PrivateKey, str | None]] = [
    ("cavage", RSA_KEY, None),
    ("cavage", ED_KEY, None),
    ("rfc9421", RSA_KEY, RSA_V1_5_SHA256),
    ("rfc9421", RSA_KEY, RSA_PSS_SHA512),
    ("rfc9421", ED_KEY, ED25519),
]
SCHEME_IDS = [
    "cavage-rsa-sha256",
    "cavage-hs2019-ed25519",
    "rfc9421-rsa-v1_5-sha256",
    "rfc9421-rsa-pss-sha512",
    "rfc9421-ed25519",
]

segment = st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=12)
header_value = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20
)
header_name = st.from_regex(r"x-[a-z]{1,8}", fullmatch=True)


@st.composite
def requests(draw: st.DrawFn) -> dict[str, Any]:
    method = draw(st.sampled_from(["GET", "POST"]))
    path = "/" + "/".join(urllib.parse.quote(s) for s in draw(st.lists(segment, max_size=3)))
    query = draw(
        st.none()
        | st.dictionaries(
            st.from_regex(r"[a-z]{1,5}", fullmatch=True), segment, min_size=1, max_size=3
        )
    )
    target = path + ("?" + urllib.parse.urlencode(query) if query else "")
    body = draw(st.binary(min_size=1, max_size=200)) if method == "POST" else b""
    extra = draw(st.dictionaries(header_name, header_value, max_size=3))
    return {"method": method, "target": target, "body": body, "extra": extra}


def sign(
    request: dict[str, Any], mode: str, key: PrivateKey, algorithm: str | None
) -> list[tuple[str, str]]:
    """Sign with every extra header covered as well, so tampering with one must show."""
    url = "https://a.test:8443" + request["target"]
    headers = [("Content-Type", "application/activity+json"), *request["extra"].items()]
    if mode == "cavage":
        base = ["(request-target)", "host", "date"]
        if request["method"] == "POST":
            base += ["digest", "content-type"]
        covered = base + list(request["extra"])
        added = sign_request_headers(
            request["method"],
            url,
            headers,
            request["body"],
            key_id=KEY_ID,
            private_key=key,
            clock=lambda: NOW,
            covered=covered,
        )
        return [*headers, *added.items()]
    added = sign_request_headers(
        request["method"],
        url,
        headers,
        request["body"],
        key_id=KEY_ID,
        private_key=key,
        mode="rfc9421",
        clock=lambda: NOW,
    )
    all_headers = [*headers, *((n, v) for n, v in added.items() if not n.startswith("Signature"))]
    components = ["@method", "@target-uri", "content-type", *request["extra"]]
    if request["method"] == "POST":
        components.append("content-digest")
    signature_input, signature = sign_rfc9421(
        request["method"],
        all_headers,
        target_uri=url,
        key_id=KEY_ID,
        private_key=key,
        created=int(NOW),
        components=components,
        algorithm=algorithm,
    )
    return [*all_headers, ("Signature-Input", signature_input), ("Signature", signature)]


def verify(
    request: dict[str, Any],
    headers: list[tuple[str, str]],
    key: PrivateKey,
    *,
    body: bytes | None = None,
    clock: float = NOW,
) -> None:
    verify_request_with_key(
        request["method"],
        request["target"],
        headers,
        request["body"] if body is None else body,
        key.public_key(),
        clock=lambda: clock,
    )


PROPERTY_SETTINGS = settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.mark.parametrize(("mode", "key", "algorithm"), SCHEMES, ids=SCHEME_IDS)
@PROPERTY_SETTINGS
@given(request=requests())
def test_every_signed_request_verifies(
    request: dict[str, Any], mode: str, key: PrivateKey, algorithm: str | None
) -> None:
    verify(request, sign(request, mode, key, algorithm), key)


@pytest.mark.parametrize(("mode", "key", "algorithm"), SCHEMES, ids=SCHEME_IDS)
@PROPERTY_SETTINGS
@given(request=requests(), data=st.data())
def test_a_changed_body_byte_fails(
    request: dict[str, Any], data: st.DataObject, mode: str, key: PrivateKey, algorithm: str | None
) -> None:
    if request["method"] != "POST":
        return
    headers = sign(request, mode, key, algorithm)
    body = bytearray(request["body"])
    index = data.draw(st.integers(0, len(body) - 1))
    body[index] ^= data.draw(st.integers(1, 255))
    with pytest.raises(SignatureError):
        verify(request, headers, key, body=bytes(body))


@pytest.mark.parametrize(("mode", "key", "algorithm"), SCHEMES, ids=SCHEME_IDS)
@PROPERTY_SETTINGS
@given(request=requests(), data=st.data())
def test_a_changed_covered_header_fails(
    request: dict[str, Any], data: st.DataObject, mode: str, key: PrivateKey, algorithm: str | None
) -> None:
    headers = sign(request, mode, key, algorithm)
    covered = {"host", *request["extra"]}
    if mode == "cavage":
        covered.add("date")
        if request["method"] == "POST":
            covered |= {"digest", "content-type"}
    else:
        covered.add("content-type")
        if request["method"] == "POST":
            covered.add("content-digest")
    candidates = [i for i, (name, _) in enumerate(headers) if name.lower() in covered]
    index = data.draw(st.sampled_from(candidates))
    name, value = headers[index]
    position = data.draw(st.integers(0, len(value) - 1))
    # Not letters: the authority is case-insensitive, so a changed case is no change at all.
    replacement = data.draw(st.sampled_from("019#!"))
    if value[position] == replacement:
        replacement = "5" if replacement != "5" else "7"
    headers[index] = (name, value[:position] + replacement + value[position + 1 :])
    with pytest.raises(SignatureError):
        verify(request, headers, key)


@pytest.mark.parametrize(("mode", "key", "algorithm"), SCHEMES, ids=SCHEME_IDS)
@settings(max_examples=20, deadline=None)
@given(request=requests(), late=st.floats(3601, 10**7), early=st.booleans())
def test_a_clock_past_the_window_fails(
    request: dict[str, Any],
    late: float,
    early: bool,
    mode: str,
    key: PrivateKey,
    algorithm: str | None,
) -> None:
    headers = sign(request, mode, key, algorithm)
    with pytest.raises(SignatureError):
        verify(request, headers, key, clock=NOW - late if early else NOW + late)
