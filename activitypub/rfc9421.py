"""HTTP Message Signatures (RFC 9421) for requests: sign, verify, and the fediverse policy.

The base layer (parsing, derived components, the signature base) is in `rfc9421_base.py` and
re-exported here. This module signs and verifies with rsa-v1_5-sha256, rsa-pss-sha512 or
ed25519, and adds the policy layer (`policy=True`, the default) an inbox needs: `created`
present and within the window, `expires` honoured, `@method` and `@target-uri` (or `@authority`
with `@path`) covered, and `content-digest` covered and matching the body when there is one.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from .digest import verify_content_digest
from .errors import (
    SignatureError,
    SignatureInvalid,
    SignatureMalformed,
    SignatureMissing,
    SignaturePolicyError,
)
from .keys import PrivateKey, PublicKey
from .rfc9421_base import (
    BODY_METHODS,
    Component,
    MessageContext,
    SignatureInput,
    build_context,
    component_values,
    make_signature_input,
    parse_signature_field,
    parse_signature_input,
    signature_base,
)
from .sfv import Item, Params, serialize_dictionary
from .sigcore import (
    ALGORITHMS,
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
    algorithm_for_key,
    check_times,
    key_fits,
    verify_bytes,
)


def default_components(method: str, headers: Headers) -> list[str]:
    """What we sign: `@method @target-uri`, plus `content-digest` when there is a body."""
    covered = ["@method", "@target-uri"]
    if method.upper() in BODY_METHODS or "content-digest" in headers:
        covered.append("content-digest")
    return covered


def sign_rfc9421(
    method: str,
    headers: HeaderInput,
    *,
    target_uri: str,
    key_id: str,
    private_key: PrivateKey,
    created: int,
    components: Sequence[str] | None = None,
    expires: int | None = None,
    label: str = "sig1",
    algorithm: str | None = None,
) -> tuple[str, str]:
    """`(Signature-Input, Signature)` header values for a request whose headers are set."""
    unsigned = unsigned_rfc9421(
        method,
        headers,
        target_uri=target_uri,
        key_id=key_id,
        private_key=private_key,
        created=created,
        components=components,
        expires=expires,
        label=label,
        algorithm=algorithm,
    )
    return unsigned.sign_with(private_key)


def unsigned_rfc9421(
    method: str,
    headers: HeaderInput,
    *,
    target_uri: str,
    key_id: str,
    private_key: PrivateKey,
    created: int,
    components: Sequence[str] | None = None,
    expires: int | None = None,
    label: str = "sig1",
    algorithm: str | None = None,
) -> Unsigned[tuple[str, str]]:
    """`sign_rfc9421` up to the private-key operation (the key only chooses the algorithm)."""
    view = Headers(headers)
    algorithm = algorithm or algorithm_for_key(private_key)
    params: Params = {"created": created}
    if expires is not None:
        params["expires"] = expires
    params["keyid"] = key_id
    params["alg"] = algorithm
    sig_input = make_signature_input(label, components or default_components(method, view), params)
    ctx = build_context(method, view, target_uri=target_uri)

    def finish(raw: bytes) -> tuple[str, str]:
        return f"{label}={sig_input.serialized}", serialize_dictionary({label: Item(raw)})

    return Unsigned(algorithm, signature_base(sig_input, ctx).encode(), finish)


def _check_policy(sig_input: SignatureInput, method: str, body: bytes) -> None:
    names = set(sig_input.covered_names)
    missing = []
    if sig_input.created is None:
        missing.append("created")
    if "@method" not in names:
        missing.append("@method")
    if "@target-uri" not in names and not (
        "@authority" in names and names & {"@path", "@request-target"}
    ):
        missing.append("@target-uri")
    if (method.upper() in BODY_METHODS or body) and "content-digest" not in names:
        missing.append("content-digest")
    if missing:
        raise SignaturePolicyError(
            f"signature {sig_input.label} does not cover {', '.join(missing)}"
        )


@dataclass(frozen=True)
class _Prepared:
    sig_input: SignatureInput
    signature: bytes
    base: bytes


def _prepare_one(
    sig_input: SignatureInput,
    signatures: dict[str, bytes],
    ctx: MessageContext,
    body: bytes,
    *,
    now: float,
    window: float,
    policy: bool,
) -> _Prepared:
    if sig_input.label not in signatures:
        raise SignatureMalformed(f"no Signature for label {sig_input.label}")
    if not sig_input.keyid:
        raise SignatureMalformed(f"signature {sig_input.label} has no keyid")
    if sig_input.alg is not None and sig_input.alg not in ALGORITHMS:
        raise SignaturePolicyError(f"algorithm {sig_input.alg!r} is not accepted")
    if policy:
        _check_policy(sig_input, ctx.method, body)
    base = signature_base(sig_input, ctx)
    check_times(now, window, created=sig_input.created, expires=sig_input.expires)
    if "content-digest" in sig_input.covered_names:
        digest = ctx.headers.get("content-digest")
        assert digest is not None  # signature_base refused an absent covered header
        verify_content_digest(digest, body)
    return _Prepared(sig_input, signatures[sig_input.label], base.encode())


def _prepare(
    method: str,
    headers: HeaderInput,
    body: bytes,
    *,
    target_uri: str | None,
    path: str | None,
    authority: str | None,
    scheme: str,
    clock: Clock,
    window: float,
    policy: bool,
    label: str | None,
) -> _Prepared:
    """Every check that needs no key, on the chosen (or the first acceptable) signature."""
    view = Headers(headers)
    input_text, signature_text = view.get("signature-input"), view.get("signature")
    if input_text is None or signature_text is None:
        raise SignatureMissing("no Signature-Input and Signature headers")
    inputs = parse_signature_input(input_text)
    signatures = parse_signature_field(signature_text)
    if label is not None:
        if label not in inputs:
            raise SignatureMissing(f"no signature labelled {label}")
        candidates = [inputs[label]]
    else:
        candidates = list(inputs.values())
    if not candidates:
        raise SignatureMissing("Signature-Input is empty")
    ctx = build_context(
        method, view, target_uri=target_uri, path=path, authority=authority, scheme=scheme
    )
    now = clock()
    first_error: SignatureError | None = None
    for sig_input in candidates:
        try:
            return _prepare_one(
                sig_input, signatures, ctx, body, now=now, window=window, policy=policy
            )
        except SignatureError as exc:
            # Another label (a proxy's, say) may be the one that satisfies us; report the first.
            first_error = first_error or exc
    assert first_error is not None
    raise first_error


def _check_crypto(prepared: _Prepared, key: PublicKey) -> str:
    alg = prepared.sig_input.alg
    if alg is not None:
        if not key_fits(alg, key):
            raise SignaturePolicyError(f"{alg} does not fit a {type(key).__name__}")
        candidates = [alg]
    elif key_fits(ED25519, key):
        candidates = [ED25519]
    else:
        candidates = [RSA_V1_5_SHA256, RSA_PSS_SHA512]
    for candidate in candidates:
        if verify_bytes(candidate, key, prepared.base, prepared.signature):
            return candidate
    raise SignatureInvalid(f"signature {prepared.sig_input.label} does not verify")


def _result(prepared: _Prepared, algorithm: str) -> VerifiedSignature:
    sig_input = prepared.sig_input
    assert sig_input.keyid is not None
    return VerifiedSignature(
        key_id=sig_input.keyid,
        algorithm=algorithm,
        covered=tuple(c.identifier if c.params else c.name for c in sig_input.components),
        scheme="rfc9421",
        created=sig_input.created,
        expires=sig_input.expires,
        label=sig_input.label,
    )


def verify_rfc9421(
    method: str,
    headers: HeaderInput,
    body: bytes,
    key: PublicKey,
    *,
    target_uri: str | None = None,
    path: str | None = None,
    authority: str | None = None,
    scheme: str = "https",
    clock: Clock = time.time,
    window: float = DEFAULT_WINDOW,
    policy: bool = True,
    label: str | None = None,
) -> VerifiedSignature:
    """Verify an RFC 9421-signed request with a known key; raise a SignatureError subclass if not.

    `policy=False` keeps the base-layer checks only (parse, time, digest when covered, crypto).
    """
    prepared = _prepare(
        method,
        headers,
        body,
        target_uri=target_uri,
        path=path,
        authority=authority,
        scheme=scheme,
        clock=clock,
        window=window,
        policy=policy,
        label=label,
    )
    return _result(prepared, _check_crypto(prepared, key))


async def verify_rfc9421_async(
    method: str,
    headers: HeaderInput,
    body: bytes,
    key_resolver: KeyResolver,
    *,
    target_uri: str | None = None,
    path: str | None = None,
    authority: str | None = None,
    scheme: str = "https",
    clock: Clock = time.time,
    window: float = DEFAULT_WINDOW,
    policy: bool = True,
    label: str | None = None,
) -> VerifiedSignature:
    """Verify an RFC 9421-signed request, resolving the keyid's key only after the cheap checks."""
    prepared = _prepare(
        method,
        headers,
        body,
        target_uri=target_uri,
        path=path,
        authority=authority,
        scheme=scheme,
        clock=clock,
        window=window,
        policy=policy,
        label=label,
    )
    assert prepared.sig_input.keyid is not None
    key = await key_resolver(prepared.sig_input.keyid)
    return _result(prepared, _check_crypto(prepared, key))


__all__ = [
    "Component",
    "MessageContext",
    "SignatureInput",
    "build_context",
    "component_values",
    "make_signature_input",
    "parse_signature_field",
    "parse_signature_input",
    "sign_rfc9421",
    "signature_base",
    "unsigned_rfc9421",
    "verify_rfc9421",
    "verify_rfc9421_async",
]
