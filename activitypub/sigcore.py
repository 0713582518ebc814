"""What both HTTP signature schemes share: header access, the clock, the result, the crypto.

Algorithm names here are RFC 9421's (`rsa-v1_5-sha256`, `rsa-pss-sha512`, `ed25519`); the
Cavage module maps its own names (`rsa-sha256`, `hs2019`) onto them.
"""

from __future__ import annotations

import email.utils
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Generic, Literal, TypeAlias, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from .errors import SignatureExpired, SignatureMalformed, SignaturePolicyError
from .keys import PrivateKey, PublicKey

Clock: TypeAlias = Callable[[], float]
KeyResolver: TypeAlias = Callable[[str], Awaitable[PublicKey]]
HeaderInput: TypeAlias = Mapping[str, str] | Iterable[tuple[str, str]]
Signed = TypeVar("Signed")

# Mastodon accepts a Date up to an hour away from its clock, either way.
DEFAULT_WINDOW = 3600.0

RSA_V1_5_SHA256 = "rsa-v1_5-sha256"
RSA_PSS_SHA512 = "rsa-pss-sha512"
ED25519 = "ed25519"
ALGORITHMS = frozenset({RSA_V1_5_SHA256, RSA_PSS_SHA512, ED25519})
# RFC 9421 section 3.3.1: RSASSA-PSS with SHA-512, MGF1 with SHA-512 and a 64-byte salt.
PSS_SALT_LENGTH = 64


class Headers:
    """Request headers by lower-cased name, every value kept in order."""

    def __init__(self, headers: HeaderInput) -> None:
        pairs = headers.items() if isinstance(headers, Mapping) else headers
        self._values: dict[str, list[str]] = {}
        for name, value in pairs:
            self._values.setdefault(name.lower(), []).append(value)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._values

    def get_all(self, name: str) -> list[str]:
        """Every value of a header, in the order received ([] when absent)."""
        return self._values.get(name.lower(), [])

    def get(self, name: str) -> str | None:
        """A header's values trimmed and joined with ", " (HTTP's combination), or None."""
        values = self._values.get(name.lower())
        if values is None:
            return None
        return ", ".join(value.strip() for value in values)


@dataclass(frozen=True)
class VerifiedSignature:
    """What a verified request signature proves: who signed (key_id) and what they covered."""

    key_id: str
    algorithm: str
    covered: tuple[str, ...]
    scheme: Literal["cavage", "rfc9421"]
    created: int | None = None
    expires: float | None = None
    label: str | None = None


def parse_http_date(value: str) -> float:
    """Epoch seconds of an HTTP Date header; SignatureMalformed if it is not a date."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError) as exc:
        raise SignatureMalformed(f"unparseable Date header {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def format_http_date(epoch: float) -> str:
    """An HTTP Date header value (IMF-fixdate) for epoch seconds."""
    return _http_date(int(epoch))


@functools.lru_cache(maxsize=4)
def _http_date(second: int) -> str:
    # Whole seconds, as the format has; a burst of requests asks for the same few.
    return email.utils.formatdate(second, usegmt=True)


def check_times(
    now: float,
    window: float,
    *,
    date: float | None = None,
    created: float | None = None,
    expires: float | None = None,
) -> None:
    """Refuse a signature whose Date/created is outside the window or whose expires has passed."""
    if date is not None and abs(now - date) > window:
        raise SignatureExpired(f"Date is {now - date:.0f} s away from now (window {window:.0f} s)")
    if created is not None:
        if created > now + window:
            raise SignatureExpired("signature created in the future")
        if now - created > window:
            raise SignatureExpired("signature created too long ago")
    if expires is not None and now > expires:
        raise SignatureExpired("signature expired")


def algorithm_for_key(key: PrivateKey | PublicKey) -> str:
    """The algorithm we sign with for a key: rsa-v1_5-sha256 for RSA, ed25519 for Ed25519."""
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return RSA_V1_5_SHA256
    return ED25519


def key_fits(algorithm: str, key: PublicKey) -> bool:
    """Whether a public key is of the kind an algorithm needs."""
    if algorithm == ED25519:
        return isinstance(key, ed25519.Ed25519PublicKey)
    return isinstance(key, rsa.RSAPublicKey)


@dataclass(frozen=True)
class Unsigned(Generic[Signed]):
    """A signature still to be made: the bytes to sign, the algorithm, and how the header
    values follow from the signature. Splitting it so lets the private-key operation run
    elsewhere (another process) while the headers are built here."""

    algorithm: str
    data: bytes
    finish: Callable[[bytes], Signed]

    def sign_with(self, key: PrivateKey) -> Signed:
        """Sign here and now with `key`."""
        return self.finish(sign_bytes(self.algorithm, key, self.data))


def sign_bytes(algorithm: str, key: PrivateKey, data: bytes) -> bytes:
    """Sign data with one of our algorithms; SignaturePolicyError if the key does not fit."""
    if algorithm == ED25519 and isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    if isinstance(key, rsa.RSAPrivateKey):
        if algorithm == RSA_V1_5_SHA256:
            return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
        if algorithm == RSA_PSS_SHA512:
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=PSS_SALT_LENGTH)
            return key.sign(data, pss, hashes.SHA512())
    raise SignaturePolicyError(f"cannot sign {algorithm} with a {type(key).__name__}")


def verify_bytes(
    algorithm: str, key: PublicKey, data: bytes, signature: bytes, *, lenient_pss: bool = False
) -> bool:
    """True if the signature over data verifies with the key under the algorithm.

    `lenient_pss` accepts any PSS salt length (hs2019 does not fix one); RFC 9421 fixes 64.
    """
    try:
        if algorithm == ED25519 and isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, data)
            return True
        if isinstance(key, rsa.RSAPublicKey):
            if algorithm == RSA_V1_5_SHA256:
                key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
                return True
            if algorithm == RSA_PSS_SHA512:
                salt = padding.PSS.AUTO if lenient_pss else PSS_SALT_LENGTH
                pss = padding.PSS(mgf=padding.MGF1(hashes.SHA512()), salt_length=salt)
                key.verify(signature, data, pss, hashes.SHA512())
                return True
    except InvalidSignature:
        return False
    return False
