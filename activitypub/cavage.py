"""HTTP signatures of draft-cavage-http-signatures-12: what Mastodon and most peers send today.

Parsing is strict (duplicate parameters, broken syntax and bad base64 are refused) but ignores
well-formed parameters it does not know, as the draft asks. Verification is split into a cheap
preparation (parse, policy, time, digest) and the crypto, so the async verifier resolves a key
only for requests that could pass.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import rsa

from .digest import verify_digest
from .errors import (
    SignatureInvalid,
    SignatureMalformed,
    SignatureMissing,
    SignaturePolicyError,
)
from .keys import PrivateKey, PublicKey
from .sigcore import (
    DEFAULT_WINDOW,
    ED25519,
    RSA_PSS_SHA512,
    RSA_V1_5_SHA256,
    Clock,
    HeaderInput,
    Headers,
    KeyResolver,
    Unsigned,
    VerifiedSignature,
    check_times,
    parse_http_date,
    verify_bytes,
)

RSA_SHA256 = "rsa-sha256"
HS2019 = "hs2019"
CAVAGE_ALGORITHMS = frozenset({RSA_SHA256, HS2019})
# Methods whose requests carry a body, so the signature must bind it through Digest.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(frozen=True)
class CavageSignature:
    """A parsed `Signature` header."""

    key_id: str
    algorithm: str | None
    headers: tuple[str, ...]
    signature: bytes
    created: int | None = None
    expires: float | None = None


# One `name=value` parameter and what follows it: a comma, or the end of the header. A value is
# a quoted string (backslash escapes any character) or a token up to a comma or blank; no
# blanks around "=". Matched from each parameter's start, so nothing can hide between them.
_PARAM = re.compile(
    r'[ \t]*([A-Za-z0-9_-]+)=(?:"([^"\\]*(?:\\.[^"\\]*)*)"|([^", \t][^, \t]*))[ \t]*(,|\Z)',
    re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _split_params(value: str) -> dict[str, str]:
    """name=value pairs of a Signature header, names lower-cased, duplicates refused."""
    params: dict[str, str] = {}
    pos = 0
    while True:
        match = _PARAM.match(value, pos)
        if match is None:
            raise SignatureMalformed(f"expected name=value at offset {pos}")
        name, quoted, token, comma = match.groups()
        name = name.lower()
        if name in params:
            raise SignatureMalformed(f"duplicate parameter {name}")
        if quoted is None:
            params[name] = token
        else:
            params[name] = _ESCAPE.sub(r"\1", quoted) if "\\" in quoted else quoted
        if not comma:
            return params
        pos = match.end()


def parse_signature_header(value: str) -> CavageSignature:
    """Parse a Cavage `Signature` header value (or an `Authorization: Signature` one)."""
    if value[:10].lower() == "signature ":
        value = value[10:]
    params = _split_params(value.strip())
    key_id = params.get("keyid")
    if not key_id:
        raise SignatureMalformed("Signature has no keyId")
    encoded = params.get("signature")
    if not encoded:
        raise SignatureMalformed("Signature has no signature")
    try:
        signature = base64.b64decode(encoded, validate=True)
    except binascii.Error as exc:
        raise SignatureMalformed("signature is not valid base64") from exc
    # Mastodon (and the draft's own C.1 example) sign only `date` when no list is given.
    names = tuple(params.get("headers", "date").lower().split())
    if not names:
        raise SignatureMalformed("empty headers list")
    if len(set(names)) != len(names):
        raise SignatureMalformed("a header is listed twice")
    created = expires = None
    if "created" in params:
        if not params["created"].isdigit():
            raise SignatureMalformed("created is not an integer")
        created = int(params["created"])
    if "expires" in params:
        whole, _, fraction = params["expires"].partition(".")
        if not whole.isdigit() or (fraction and not fraction.isdigit()):
            raise SignatureMalformed("expires is not a number")
        expires = float(params["expires"])
    algorithm = params.get("algorithm")
    return CavageSignature(
        key_id=key_id,
        algorithm=algorithm.lower() if algorithm else None,
        headers=names,
        signature=signature,
        created=created,
        expires=expires,
    )


def signing_string(
    covered: Sequence[str],
    *,
    method: str,
    path: str,
    headers: Headers,
    created: int | None = None,
    expires: float | None = None,
    host_override: str | None = None,
) -> str:
    """The text a Cavage signature signs, one `name: value` line per covered header."""
    lines = []
    for name in covered:
        name = name.lower()
        if name == "(request-target)":
            lines.append(f"{name}: {method.lower()} {path}")
        elif name == "(created)":
            if created is None:
                raise SignatureMalformed("(created) is covered but has no created parameter")
            lines.append(f"{name}: {created}")
        elif name == "(expires)":
            if expires is None:
                raise SignatureMalformed("(expires) is covered but has no expires parameter")
            shown = str(expires) if expires % 1 else str(int(expires))
            lines.append(f"{name}: {shown}")
        elif name == "host" and host_override is not None:
            lines.append(f"host: {host_override}")
        else:
            value = headers.get(name)
            if value is None:
                raise SignatureMalformed(f"covered header {name!r} is absent from the request")
            lines.append(f"{name}: {value}")
    return "\n".join(lines)


def default_covered(method: str, headers: Headers) -> list[str]:
    """What we sign: `(request-target) host date` plus `digest content-type` with a body.

    Never `(created)`: Mastodon refuses it with rsa-sha256.
    """
    covered = ["(request-target)", "host", "date"]
    if method.upper() in BODY_METHODS or "digest" in headers:
        covered.append("digest")
        if "content-type" in headers:
            covered.append("content-type")
    return covered


def sign_cavage(
    method: str,
    path: str,
    headers: HeaderInput,
    *,
    key_id: str,
    private_key: PrivateKey,
    covered: Sequence[str] | None = None,
    created: int | None = None,
    expires: int | None = None,
) -> str:
    """The `Signature` header value for a request whose other headers are already set.

    RSA keys sign `rsa-sha256` (what Mastodon expects), Ed25519 keys `hs2019`.
    """
    unsigned = unsigned_cavage(
        method,
        path,
        headers,
        key_id=key_id,
        private_key=private_key,
        covered=covered,
        created=created,
        expires=expires,
    )
    return unsigned.sign_with(private_key)


def unsigned_cavage(
    method: str,
    path: str,
    headers: HeaderInput,
    *,
    key_id: str,
    private_key: PrivateKey,
    covered: Sequence[str] | None = None,
    created: int | None = None,
    expires: int | None = None,
) -> Unsigned[str]:
    """`sign_cavage` up to the private-key operation (the key only chooses the algorithm)."""
    view = Headers(headers)
    names = [name.lower() for name in (covered or default_covered(method, view))]
    is_rsa = isinstance(private_key, rsa.RSAPrivateKey)
    if is_rsa and ("(created)" in names or "(expires)" in names):
        raise SignaturePolicyError("rsa-sha256 cannot cover (created) or (expires)")
    text = signing_string(
        names, method=method, path=path, headers=view, created=created, expires=expires
    )
    key_id_quoted = key_id.replace("\\", "\\\\").replace('"', '\\"')
    parts = [f'keyId="{key_id_quoted}"', f'algorithm="{RSA_SHA256 if is_rsa else HS2019}"']
    if created is not None:
        parts.append(f"created={created}")
    if expires is not None:
        parts.append(f"expires={expires}")
    parts.append(f'headers="{" ".join(names)}"')

    def finish(raw: bytes) -> str:
        return ",".join([*parts, f'signature="{base64.b64encode(raw).decode("ascii")}"'])

    return Unsigned(RSA_V1_5_SHA256 if is_rsa else ED25519, text.encode(), finish)


def _header_value(view: Headers) -> str:
    values = view.get_all("signature")
    if len(values) > 1:
        raise SignatureMalformed("more than one Signature header")
    if values:
        return values[0]
    for value in view.get_all("authorization"):
        if value[:10].lower() == "signature ":
            return value
    raise SignatureMissing("no Signature header")


def _prepare(
    method: str,
    path: str,
    headers: HeaderInput,
    body: bytes,
    *,
    clock: Clock,
    window: float,
    host_override: str | None,
    policy: bool,
) -> tuple[CavageSignature, bytes]:
    """Every check that needs no key: parse, algorithm, coverage, time and digest."""
    view = Headers(headers)
    parsed = parse_signature_header(_header_value(view))
    algorithm = parsed.algorithm or HS2019
    if algorithm not in CAVAGE_ALGORITHMS:
        raise SignaturePolicyError(f"algorithm {algorithm!r} is not accepted")
    covered = set(parsed.headers)
    if algorithm == RSA_SHA256 and covered & {"(created)", "(expires)"}:
        # Mastodon refuses these pseudo-headers with rsa-sha256; the draft reserves them for hs2019.
        raise SignaturePolicyError("(created)/(expires) are not allowed with rsa-sha256")
    needs_body_digest = method.upper() in BODY_METHODS or bool(body)
    if policy:
        missing = {"(request-target)", "host"} - covered
        if not covered & {"date", "(created)"}:
            missing.add("date")
        if needs_body_digest and "digest" not in covered:
            missing.add("digest")
        if missing:
            raise SignaturePolicyError(f"signature does not cover {', '.join(sorted(missing))}")
    text = signing_string(
        parsed.headers,
        method=method,
        path=path,
        headers=view,
        created=parsed.created,
        expires=parsed.expires,
        host_override=host_override,
    )
    date = view.get("date")
    check_times(
        clock(),
        window,
        date=parse_http_date(date) if date is not None and "date" in covered else None,
        created=parsed.created,
        expires=parsed.expires,
    )
    if "digest" in covered:
        digest = view.get("digest")
        assert digest is not None  # signing_string refused an absent covered header
        verify_digest(digest, body)
    return parsed, text.encode()


def _check_crypto(parsed: CavageSignature, data: bytes, key: PublicKey) -> str:
    """Verify the signature bytes; return the algorithm name as the signer gave it."""
    algorithm = parsed.algorithm or HS2019
    if isinstance(key, rsa.RSAPublicKey):
        # hs2019 leaves the RSA padding to the key: PKCS#1 v1.5 is what peers use, PSS is allowed.
        candidates = [RSA_V1_5_SHA256]
        if algorithm == HS2019:
            candidates.append(RSA_PSS_SHA512)
    elif algorithm == HS2019:
        candidates = [ED25519]
    else:
        raise SignaturePolicyError(f"{algorithm} needs an RSA key")
    for candidate in candidates:
        if verify_bytes(candidate, key, data, parsed.signature, lenient_pss=True):
            return algorithm
    raise SignatureInvalid("signature does not verify")


def _result(parsed: CavageSignature, algorithm: str) -> VerifiedSignature:
    return VerifiedSignature(
        key_id=parsed.key_id,
        algorithm=algorithm,
        covered=parsed.headers,
        scheme="cavage",
        created=parsed.created,
        expires=parsed.expires,
    )


def verify_cavage(
    method: str,
    path: str,
    headers: HeaderInput,
    body: bytes,
    key: PublicKey,
    *,
    clock: Clock = time.time,
    window: float = DEFAULT_WINDOW,
    host_override: str | None = None,
    policy: bool = True,
) -> VerifiedSignature:
    """Verify a Cavage-signed request with a known key; raise a SignatureError subclass if not.

    `path` is the request target (path and query) as received. `policy=False` skips the
    coverage rules (for the draft's own test vectors), never the time, digest or crypto checks.
    """
    parsed, data = _prepare(
        method,
        path,
        headers,
        body,
        clock=clock,
        window=window,
        host_override=host_override,
        policy=policy,
    )
    return _result(parsed, _check_crypto(parsed, data, key))


async def verify_cavage_async(
    method: str,
    path: str,
    headers: HeaderInput,
    body: bytes,
    key_resolver: KeyResolver,
    *,
    clock: Clock = time.time,
    window: float = DEFAULT_WINDOW,
    host_override: str | None = None,
    policy: bool = True,
) -> VerifiedSignature:
    """Verify a Cavage-signed request, resolving the keyId's key only after the cheap checks."""
    parsed, data = _prepare(
        method,
        path,
        headers,
        body,
        clock=clock,
        window=window,
        host_override=host_override,
        policy=policy,
    )
    key = await key_resolver(parsed.key_id)
    return _result(parsed, _check_crypto(parsed, data, key))


__all__ = [
    "CAVAGE_ALGORITHMS",
    "HS2019",
    "RSA_SHA256",
    "CavageSignature",
    "default_covered",
    "parse_signature_header",
    "sign_cavage",
    "signing_string",
    "unsigned_cavage",
    "verify_cavage",
    "verify_cavage_async",
]
