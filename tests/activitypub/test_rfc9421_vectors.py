"""RFC 9421 Appendix B.2 (and B.4) request vectors, verified byte for byte with the RFC's keys.

The request, the keys (Appendix B.1) and the signatures are copied from the RFC text (line
wrapping per RFC 8792 undone). B.2.4 (a response, ecdsa-p256-sha256) and B.2.5 (hmac-sha256)
use algorithms we do not accept and are skipped.
"""

from __future__ import annotations

import base64

import pytest

from activitypub.errors import SignatureInvalid, SignaturePolicyError
from activitypub.keys import load_private_pem, load_public_pem
from activitypub.rfc9421 import (
    build_context,
    make_signature_input,
    parse_signature_field,
    parse_signature_input,
    sign_rfc9421,
    signature_base,
    verify_rfc9421,
)
from activitypub.sigcore import ED25519, RSA_PSS_SHA512, RSA_V1_5_SHA256, sign_bytes
from tests.activitypub.rfc_keys import (
    TEST_KEY_ED25519_PRIVATE,
    TEST_KEY_ED25519_PUBLIC,
    TEST_KEY_RSA_PRIVATE,
    TEST_KEY_RSA_PSS_PRIVATE,
    TEST_KEY_RSA_PSS_PUBLIC,
    TEST_KEY_RSA_PUBLIC,
)

CREATED = 1618884473
TARGET = "https://example.com/foo?param=Value&Pet=dog"
BODY = b'{"hello": "world"}'
CONTENT_DIGEST = (
    "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
)
# The B.2 request: POST /foo?param=Value&Pet=dog HTTP/1.1
REQUEST_HEADERS = [
    ("Host", "example.com"),
    ("Date", "Tue, 20 Apr 2021 02:07:55 GMT"),
    ("Content-Type", "application/json"),
    ("Content-Digest", CONTENT_DIGEST),
    ("Content-Length", "18"),
]


def clock() -> float:
    return CREATED + 5


VECTORS = {
    "B.2.1": (
        'sig-b21=();created=1618884473;keyid="test-key-rsa-pss";nonce="b3k2pp5k7z-50gnwp.yemd"',
        "sig-b21=:d2pmTvmbncD3xQm8E9ZV2828BjQWGgiwAaw5bAkgibUopemLJcWDy/lkbbHAve4cRAtx31Iq786U7it"
        "++wgGxbtRxf8Udx7zFZsckzXaJMkA7ChG52eSkFxykJeNqsrWH5S+oxNFlD4dzVuwe8DhTSja8xxbR/Z2cOGdCbzR"
        "72rgFWhzx2VjBqJzsPLMIQKhO4DGezXehhWwE56YCE+O6c0mKZsfxVrogUvA4HELjVKWmAvtl6UnCh8jYzuVG5WSb/"
        "QEVPnP5TmcAnLH1g+s++v6d4s8m0gCw1fV5/SITLq9mhho8K3+7EPYTU8IU1bLhdxO5Nyt8C8ssinQ98Xw9Q==:",
        '"@signature-params": ();created=1618884473;keyid="test-key-rsa-pss"'
        ';nonce="b3k2pp5k7z-50gnwp.yemd"',
        TEST_KEY_RSA_PSS_PUBLIC,
        RSA_PSS_SHA512,
    ),
    "B.2.2": (
        'sig-b22=("@authority" "content-digest" "@query-param";name="Pet")'
        ';created=1618884473;keyid="test-key-rsa-pss";tag="header-example"',
        "sig-b22=:LjbtqUbfmvjj5C5kr1Ugj4PmLYvx9wVjZvD9GsTT4F7GrcQEdJzgI9qHxICagShLRiLMlAJjtq6N4CDfKtjvu"
        "JyE5qH7KT8UCMkSowOB4+ECxCmT8rtAmj/0PIXxi0A0nxKyB09RNrCQibbUjsLS/2YyFYXEu4TRJQzRw1rLEuEfY17SA"
        "RYhpTlaqwZVtR8NV7+4UKkjqpcAoFqWFQh62s7Cl+H2fjBSpqfZUJcsIk4N6wiKYd4je2U/lankenQ99PZfB4jY3I5rS"
        "V2DSBVkSFsURIjYErOs0tFTQosMTAoxk//0RoKUqiYY8Bh0aaUEb0rQl3/XaVe4bXTugEjHSw==:",
        '"@authority": example.com\n'
        f'"content-digest": {CONTENT_DIGEST}\n'
        '"@query-param";name="Pet": dog\n'
        '"@signature-params": ("@authority" "content-digest" "@query-param";name="Pet")'
        ';created=1618884473;keyid="test-key-rsa-pss";tag="header-example"',
        TEST_KEY_RSA_PSS_PUBLIC,
        RSA_PSS_SHA512,
    ),
    "B.2.3": (
        'sig-b23=("date" "@method" "@path" "@query" "@authority" "content-type" "content-digest"'
        ' "content-length");created=1618884473;keyid="test-key-rsa-pss"',
        "sig-b23=:bbN8oArOxYoyylQQUU6QYwrTuaxLwjAC9fbY2F6SVWvh0yBiMIRGOnMYwZ/5MR6fb0Kh1rIRASVxFkeGt683+q"
        "RpRRU5p2voTp768ZrCUb38K0fUxN0O0iC59DzYx8DFll5GmydPxSmme9v6ULbMFkl+V5B1TP/yPViV7KsLNmvKiLJH1"
        "pFkh/aYA2HXXZzNBXmIkoQoLd7YfW91kE9o/CCoC1xMy7JA1ipwvKvfrs65ldmlu9bpG6A9BmzhuzF8Eim5f8ui9eH8L"
        "ZH896+QIF61ka39VBrohr9iyMUJpvRX2Zbhl5ZJzSRxpJyoEZAFL2FUo5fTIztsDZKEgM4cUA==:",
        '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        '"@method": POST\n'
        '"@path": /foo\n'
        '"@query": ?param=Value&Pet=dog\n'
        '"@authority": example.com\n'
        '"content-type": application/json\n'
        f'"content-digest": {CONTENT_DIGEST}\n'
        '"content-length": 18\n'
        '"@signature-params": ("date" "@method" "@path" "@query" "@authority" "content-type"'
        ' "content-digest" "content-length");created=1618884473;keyid="test-key-rsa-pss"',
        TEST_KEY_RSA_PSS_PUBLIC,
        RSA_PSS_SHA512,
    ),
    "B.2.6": (
        'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"',
        "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
        '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
        '"@method": POST\n'
        '"@path": /foo\n'
        '"@authority": example.com\n'
        '"content-type": application/json\n'
        '"content-length": 18\n'
        '"@signature-params": ("date" "@method" "@path" "@authority" "content-type"'
        ' "content-length");created=1618884473;keyid="test-key-ed25519"',
        TEST_KEY_ED25519_PUBLIC,
        ED25519,
    ),
}


def signed(signature_input: str, signature: str) -> list[tuple[str, str]]:
    return [*REQUEST_HEADERS, ("Signature-Input", signature_input), ("Signature", signature)]


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_signature_base_is_the_rfc_text_byte_for_byte(name: str) -> None:
    signature_input, _, expected_base, _, _ = VECTORS[name]
    (sig_input,) = parse_signature_input(signature_input).values()
    ctx = build_context("POST", REQUEST_HEADERS, target_uri=TARGET)
    assert signature_base(sig_input, ctx) == expected_base
    # The same base from the request target and Host header, as an inbox sees it.
    ctx = build_context("POST", REQUEST_HEADERS, path="/foo?param=Value&Pet=dog")
    assert signature_base(sig_input, ctx) == expected_base


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_the_rfc_signature_verifies(name: str) -> None:
    signature_input, signature, _, public_pem, algorithm = VECTORS[name]
    result = verify_rfc9421(
        "POST", signed(signature_input, signature), BODY, load_public_pem(public_pem),
        target_uri=TARGET, clock=clock, policy=False,
    )
    assert result.algorithm == algorithm
    assert result.label == signature_input.partition("=")[0]
    assert result.key_id in {"test-key-rsa-pss", "test-key-ed25519"}


@pytest.mark.parametrize("name", sorted(VECTORS))
def test_the_rfc_signature_fails_on_a_changed_base(name: str) -> None:
    signature_input, signature, _, public_pem, _ = VECTORS[name]
    # Every vector covers @signature-params, so a changed created breaks even B.2.1.
    headers = signed(signature_input.replace("created=1618884473", "created=1618884474"), signature)
    with pytest.raises(SignatureInvalid):
        verify_rfc9421(
            "POST", headers, BODY, load_public_pem(public_pem),
            path="/foo?param=Value&Pet=dog", clock=clock, policy=False,
        )


def test_b26_ed25519_signing_reproduces_the_rfc_signature() -> None:
    _, signature, expected_base, _, _ = VECTORS["B.2.6"]
    key = load_private_pem(TEST_KEY_ED25519_PRIVATE)
    raw = sign_bytes(ED25519, key, expected_base.encode())
    assert "sig-b26=:" + base64.b64encode(raw).decode() + ":" == signature
    assert parse_signature_field(signature)["sig-b26"] == raw


def test_policy_refuses_b21_which_covers_nothing() -> None:
    signature_input, signature, _, public_pem, _ = VECTORS["B.2.1"]
    with pytest.raises(SignaturePolicyError):
        verify_rfc9421(
            "POST", signed(signature_input, signature), BODY, load_public_pem(public_pem),
            target_uri=TARGET, clock=clock,
        )


@pytest.mark.parametrize("name", ["B.2.2", "B.2.6"])
def test_policy_refuses_vectors_without_method_or_digest(name: str) -> None:
    signature_input, signature, _, public_pem, _ = VECTORS[name]
    with pytest.raises(SignaturePolicyError):
        verify_rfc9421(
            "POST", signed(signature_input, signature), BODY, load_public_pem(public_pem),
            target_uri=TARGET, clock=clock,
        )


def test_policy_accepts_b23_full_coverage_and_checks_its_sha512_digest() -> None:
    signature_input, signature, _, public_pem, _ = VECTORS["B.2.3"]
    result = verify_rfc9421(
        "POST", signed(signature_input, signature), BODY, load_public_pem(public_pem),
        target_uri=TARGET, clock=clock,
    )
    assert result.created == CREATED
    assert "content-digest" in result.covered


def test_the_rsa_pss_test_key_signs_what_its_public_key_verifies() -> None:
    # The private key carries the id-RSASSA-PSS OID; we can load it and sign with it.
    signature_input, _, _, _, _ = VECTORS["B.2.3"]
    key = load_private_pem(TEST_KEY_RSA_PSS_PRIVATE)
    (sig_input,) = parse_signature_input(signature_input).values()
    base = signature_base(sig_input, build_context("POST", REQUEST_HEADERS, target_uri=TARGET))
    raw = sign_bytes(RSA_PSS_SHA512, key, base.encode())
    headers = signed(signature_input, "sig-b23=:" + base64.b64encode(raw).decode() + ":")
    verify_rfc9421(
        "POST", headers, BODY, load_public_pem(TEST_KEY_RSA_PSS_PUBLIC),
        target_uri=TARGET, clock=clock,
    )


# B.4: a GET signed with ed25519 over ("@method" "@path" "@authority" "accept"), then transformed.
B4_INPUT = (
    'transform=("@method" "@path" "@authority" "accept");created=1618884473'
    ';keyid="test-key-ed25519"'
)
B4_SIGNATURE = (
    "transform=:ZT1kooQsEHpZ0I1IjCqtQppOmIqlJPeo7DHR3SoMn0s5JZ1eRGS0A+vyYP9t/LXlh5QMFFQ6cpLt2m0pmj3NDA==:"
)
B4_BASE = (
    '"@method": GET\n"@path": /demo\n"@authority": example.org\n"accept": application/json, */*\n'
    '"@signature-params": ("@method" "@path" "@authority" "accept");created=1618884473'
    ';keyid="test-key-ed25519"'
)
B4_SIG = [("Signature-Input", B4_INPUT), ("Signature", B4_SIGNATURE)]
B4_VALID = {
    "original": ("GET", "/demo?name1=Value1&Name2=value2", [
        ("Host", "example.org"), ("Date", "Fri, 15 Jul 2022 14:24:55 GMT"),
        ("Accept", "application/json"), ("Accept", "*/*"), *B4_SIG]),
    "query and header added": ("GET", "/demo?name1=Value1&Name2=value2&param=added", [
        ("Host", "example.org"), ("Date", "Fri, 15 Jul 2022 14:24:55 GMT"),
        ("Accept", "application/json"), ("Accept", "*/*"),
        ("Accept-Language", "en-US,en;q=0.5"), *B4_SIG]),
    "accept combined, date dropped": ("GET", "/demo?name1=Value1&Name2=value2", [
        ("Host", "example.org"), ("Referer", "https://developer.example.org/demo"),
        ("Accept", "application/json, */*"), *B4_SIG]),
    "reordered": ("GET", "/demo?name1=Value1&Name2=value2", [
        ("Accept", "application/json"), ("Accept", "*/*"),
        ("Date", "Fri, 15 Jul 2022 14:24:55 GMT"), ("Host", "example.org"), *B4_SIG]),
}
B4_INVALID = {
    "method changed": ("POST", "/demo?name1=Value1&Name2=value2", [
        ("Host", "example.com"), ("Date", "Fri, 15 Jul 2022 14:24:55 GMT"),
        ("Accept", "application/json"), ("Accept", "*/*"), *B4_SIG]),
    "accept reordered": ("GET", "/demo?name1=Value1&Name2=value2", [
        ("Host", "example.org"), ("Date", "Fri, 15 Jul 2022 14:24:55 GMT"),
        ("Accept", "*/*"), ("Accept", "application/json"), *B4_SIG]),
}


def test_b4_signature_base() -> None:
    method, path, headers = B4_VALID["original"]
    (sig_input,) = parse_signature_input(B4_INPUT).values()
    assert signature_base(sig_input, build_context(method, headers, path=path)) == B4_BASE


@pytest.mark.parametrize("name", sorted(B4_VALID))
def test_b4_transformations_that_keep_the_signature_valid(name: str) -> None:
    method, path, headers = B4_VALID[name]
    verify_rfc9421(
        method, headers, b"", load_public_pem(TEST_KEY_ED25519_PUBLIC),
        path=path, clock=clock, policy=False,
    )


@pytest.mark.parametrize("name", sorted(B4_INVALID))
def test_b4_transformations_that_break_the_signature(name: str) -> None:
    method, path, headers = B4_INVALID[name]
    with pytest.raises(SignatureInvalid):
        verify_rfc9421(
            method, headers, b"", load_public_pem(TEST_KEY_ED25519_PUBLIC),
            path=path, clock=clock, policy=False,
        )


# Our own vector for rsa-v1_5-sha256 (the RFC has none for requests): PKCS#1 v1.5 is
# deterministic, so the signature of this base with test-key-rsa is fixed.
OWN_BASE = (
    '"@method": POST\n'
    '"@target-uri": https://example.com/foo?param=Value&Pet=dog\n'
    f'"content-digest": {CONTENT_DIGEST}\n'
    '"@signature-params": ("@method" "@target-uri" "content-digest");created=1618884473'
    ';keyid="test-key-rsa";alg="rsa-v1_5-sha256"'
)
OWN_SIGNATURE = (
    "f+PXWL7tySeFfB+sohOyeZ8pIbCo57ijuN4QkH8BIKAFbPv2dFM3fYtlFuWEubbBq03S8QWth7OTWcTy0aOzGYVCMg"
    "tsWy/W/SYlThGxrjVUmJrWqdwM5ReqOgCaY7NkSeUT7kDdDnzYGRxBRpcNma2Q5DGHPL3y6iy0g7WexkJtIpay+KGM"
    "htjxwnhRcn/nyC0xnIWHgh7OZ+MO9iywAMyc3qvf4R0DCt8cQQjvx54Pz8pTLLqzbq087wTbZWrRH98p6mNqxpkorU"
    "w29hJ4fLB8b9JbkxZ3021mofV9k5AOve43Y7Hj3W65xQySe7fBiOemnIV4u8Oh7uuuAMdcUg=="
)


def test_own_rsa_v1_5_sha256_vector() -> None:
    key = load_private_pem(TEST_KEY_RSA_PRIVATE)
    signature_input, signature = sign_rfc9421(
        "POST", REQUEST_HEADERS, target_uri=TARGET, key_id="test-key-rsa", private_key=key,
        created=CREATED, label="sig-own",
    )
    sig_input = parse_signature_input(signature_input)["sig-own"]
    assert sig_input == make_signature_input(
        "sig-own", ["@method", "@target-uri", "content-digest"],
        {"created": CREATED, "keyid": "test-key-rsa", "alg": RSA_V1_5_SHA256},
    )
    ctx = build_context("POST", REQUEST_HEADERS, target_uri=TARGET)
    assert signature_base(sig_input, ctx) == OWN_BASE
    assert signature == f"sig-own=:{OWN_SIGNATURE}:"
    result = verify_rfc9421(
        "POST", [*REQUEST_HEADERS, ("Signature-Input", signature_input), ("Signature", signature)],
        BODY, load_public_pem(TEST_KEY_RSA_PUBLIC), target_uri=TARGET, clock=clock,
    )
    assert result.algorithm == RSA_V1_5_SHA256
    assert result.covered == ("@method", "@target-uri", "content-digest")
