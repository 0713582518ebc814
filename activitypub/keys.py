"""Keys for HTTP signatures: RSA-2048 and Ed25519, PEM in and out, FEP-521a multibase.

Private keys are written as PKCS#8 PEM, public keys as SubjectPublicKeyInfo PEM (what
`publicKey.publicKeyPem` carries on the fediverse). Every failure raises `KeyError_`.
"""

from __future__ import annotations

from typing import TypeAlias

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from .errors import KeyError_

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ed25519.Ed25519PublicKey

RSA_BITS = 2048
# FEP-521a / Multikey: the multicodec prefix of an Ed25519 public key (varint of 0xed).
_ED25519_MULTICODEC = b"\xed\x01"
_B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {char: index for index, char in enumerate(_B58_ALPHABET)}


def generate_rsa(bits: int = RSA_BITS) -> rsa.RSAPrivateKey:
    """A new RSA key for signing (2048 bits, e = 65537, as every peer expects)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def generate_ed25519() -> ed25519.Ed25519PrivateKey:
    """A new Ed25519 key for signing."""
    return ed25519.Ed25519PrivateKey.generate()


def public_key_of(key: PrivateKey | PublicKey) -> PublicKey:
    """The public half of a key (a public key is returned as it is)."""
    if isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        return key.public_key()
    return key


def private_to_pem(key: PrivateKey) -> str:
    """A private key as unencrypted PKCS#8 PEM text."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")


def public_to_pem(key: PrivateKey | PublicKey) -> str:
    """A public key (or a private key's public half) as SubjectPublicKeyInfo PEM text."""
    return (
        public_key_of(key)
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def _as_bytes(pem: str | bytes) -> bytes:
    return pem.encode("ascii", "replace") if isinstance(pem, str) else pem


def load_private_pem(
    pem: str | bytes, *, unsafe_skip_rsa_key_validation: bool = False
) -> PrivateKey:
    """Load an unencrypted private key (PKCS#8 or PKCS#1 PEM).

    Checking an RSA key costs about 48 ms; a caller loading keys it generated itself may pass
    `unsafe_skip_rsa_key_validation=True` (cryptography's own switch), and should keep the loaded
    key in memory either way.
    """
    try:
        key = serialization.load_pem_private_key(
            _as_bytes(pem),
            password=None,
            unsafe_skip_rsa_key_validation=unsafe_skip_rsa_key_validation,
        )
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyError_(f"cannot load private key: {exc}") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise KeyError_(f"unsupported private key type {type(key).__name__}")
    return key


def load_public_pem(pem: str | bytes) -> PublicKey:
    """Load a public key from SPKI PEM (or PKCS#1 `RSA PUBLIC KEY` PEM, which old peers publish)."""
    try:
        key = serialization.load_pem_public_key(_as_bytes(pem).strip())
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise KeyError_(f"cannot load public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise KeyError_(f"unsupported public key type {type(key).__name__}")
    return key


def b58encode(data: bytes) -> str:
    """Base58btc (Bitcoin alphabet), leading zero bytes kept as '1'."""
    number = int.from_bytes(data, "big")
    out = []
    while number:
        number, rest = divmod(number, 58)
        out.append(_B58_ALPHABET[rest])
    zeros = len(data) - len(data.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def b58decode(text: str) -> bytes:
    """Decode base58btc text; raises KeyError_ on a character outside the alphabet."""
    number = 0
    for char in text:
        digit = _B58_INDEX.get(char)
        if digit is None:
            raise KeyError_(f"invalid base58 character {char!r}")
        number = number * 58 + digit
    zeros = len(text) - len(text.lstrip("1"))
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    return b"\0" * zeros + body


def ed25519_to_multibase(key: ed25519.Ed25519PublicKey | ed25519.Ed25519PrivateKey) -> str:
    """An Ed25519 public key as FEP-521a `publicKeyMultibase`: 'z' + base58btc(0xed01 + raw)."""
    public = key.public_key() if isinstance(key, ed25519.Ed25519PrivateKey) else key
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "z" + b58encode(_ED25519_MULTICODEC + raw)


def ed25519_from_multibase(value: str) -> ed25519.Ed25519PublicKey:
    """Load a FEP-521a `publicKeyMultibase` Ed25519 public key."""
    if not value.startswith("z"):
        raise KeyError_("multibase key must use base58btc (prefix 'z')")
    decoded = b58decode(value[1:])
    if not decoded.startswith(_ED25519_MULTICODEC) or len(decoded) != 34:
        raise KeyError_("multibase key is not an Ed25519 public key")
    return ed25519.Ed25519PublicKey.from_public_bytes(decoded[2:])
