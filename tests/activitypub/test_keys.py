"""Keys: generation, PEM in and out, FEP-521a multibase."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from activitypub.errors import KeyError_
from activitypub.keys import (
    b58decode,
    b58encode,
    ed25519_from_multibase,
    ed25519_to_multibase,
    generate_ed25519,
    generate_rsa,
    load_private_pem,
    load_public_pem,
    private_to_pem,
    public_to_pem,
)
from tests.activitypub.rfc_keys import TEST_KEY_ED25519_PUBLIC, TEST_KEY_RSA_PUBLIC

RSA_KEY = generate_rsa()


def test_rsa_round_trip_through_pem() -> None:
    assert RSA_KEY.key_size == 2048
    pem = private_to_pem(RSA_KEY)
    assert pem.startswith("-----BEGIN PRIVATE KEY-----")
    for skip in (False, True):
        loaded = load_private_pem(pem, unsafe_skip_rsa_key_validation=skip)
        assert isinstance(loaded, rsa.RSAPrivateKey)
        assert loaded.private_numbers() == RSA_KEY.private_numbers()
    public = public_to_pem(RSA_KEY)
    assert public.startswith("-----BEGIN PUBLIC KEY-----")
    assert public_to_pem(load_public_pem(public)) == public
    assert public_to_pem(load_public_pem(public.encode())) == public


def test_ed25519_round_trip_through_pem() -> None:
    key = generate_ed25519()
    loaded = load_private_pem(private_to_pem(key))
    assert isinstance(loaded, ed25519.Ed25519PrivateKey)
    assert public_to_pem(loaded) == public_to_pem(key)
    assert isinstance(load_public_pem(public_to_pem(key)), ed25519.Ed25519PublicKey)


def test_pkcs1_rsa_public_key_pem_is_accepted() -> None:
    key = load_public_pem(TEST_KEY_RSA_PUBLIC)
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048


@pytest.mark.parametrize(
    "pem", ["", "not a key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"]
)
def test_garbage_is_refused(pem: str) -> None:
    with pytest.raises(KeyError_):
        load_public_pem(pem)
    with pytest.raises(KeyError_):
        load_private_pem(pem)


def test_unsupported_key_types_are_refused() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(KeyError_):
        load_private_pem(private)
    with pytest.raises(KeyError_):
        load_public_pem(public)


def test_base58() -> None:
    assert b58encode(b"") == ""
    assert b58encode(b"\0\0\x01") == "112"
    assert b58encode(b"hello world") == "StV1DL6CwTryKyV"
    for data in (b"", b"\0", b"\0\0abc", bytes(range(40))):
        assert b58decode(b58encode(data)) == data
    with pytest.raises(KeyError_):
        b58decode("0OIl")


def test_multibase_round_trip_and_a_known_value() -> None:
    key = load_public_pem(TEST_KEY_ED25519_PUBLIC)
    assert isinstance(key, ed25519.Ed25519PublicKey)
    encoded = ed25519_to_multibase(key)
    assert encoded.startswith("z6Mk")  # every Ed25519 multikey starts so
    assert public_to_pem(ed25519_from_multibase(encoded)) == public_to_pem(key)
    # The did:key spec's Ed25519 example decodes to a valid key.
    ed25519_from_multibase("z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK")
    private = generate_ed25519()
    assert ed25519_to_multibase(private) == ed25519_to_multibase(private.public_key())


@pytest.mark.parametrize("value", ["", "f00", "z", "z111", "zStV1DL6CwTryKyV"])
def test_multibase_refuses_what_is_not_an_ed25519_key(value: str) -> None:
    with pytest.raises(KeyError_):
        ed25519_from_multibase(value)
