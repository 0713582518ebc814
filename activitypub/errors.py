"""The one exception tree of the activitypub package.

ProtocolError
├── SignatureError            a signature is missing, malformed, stale or does not verify
│   ├── SignatureMissing      no Signature / Signature-Input header at all
│   ├── SignatureMalformed    the header cannot be parsed (duplicate parameters, bad base64 ...)
│   ├── SignaturePolicyError  it parses, but covers too little or uses a refused algorithm
│   ├── SignatureExpired      the Date / created / expires window is violated
│   ├── DigestMismatch        the body does not match Digest / Content-Digest
│   └── SignatureInvalid      the cryptography says no
├── KeyError_                 a key cannot be loaded or is of an unsupported kind
├── FetchError                a guarded fetch failed
│   ├── AddressRefused        the URL or a resolved address is not allowed (SSRF guard)
│   ├── FetchTooLarge         the response exceeded the size cap
│   ├── FetchTimeout          a connect, read or overall deadline passed
│   ├── FetchStatusError      the remote answered a non-2xx status (carries .status)
│   ├── FetchContentTypeError the remote answered something that is not ActivityStreams
│   ├── FetchIdMismatch       the document's id is not the URL it was fetched from
│   ├── TooManyRedirects      more redirects than allowed
│   └── CrossOriginRedirect   a redirect led to another origin where that is refused
├── WebFingerError            a WebFinger resource or document is invalid
└── VocabularyError           an activity or object lacks what the protocol requires
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base class of every error raised by the activitypub package."""


class SignatureError(ProtocolError):
    """A request's signature cannot be accepted."""


class SignatureMissing(SignatureError):
    """The request carries no signature."""


class SignatureMalformed(SignatureError):
    """The signature header cannot be parsed."""


class SignaturePolicyError(SignatureError):
    """The signature parses but does not cover what the fediverse policy requires."""


class SignatureExpired(SignatureError):
    """The signature's time window (Date, created, expires) is violated."""


class DigestMismatch(SignatureError):
    """The body does not match its Digest or Content-Digest header."""


class SignatureInvalid(SignatureError):
    """The signature does not verify with the key."""


class KeyError_(ProtocolError):  # avoids shadowing the builtin KeyError
    """A key cannot be loaded or is of an unsupported kind."""


class FetchError(ProtocolError):
    """A guarded fetch failed."""


class AddressRefused(FetchError):
    """The URL or one of its resolved addresses is not allowed."""


class FetchTooLarge(FetchError):
    """The response body exceeded the size cap."""


class FetchTimeout(FetchError):
    """A connect, read or overall deadline passed."""


class FetchStatusError(FetchError):
    """The remote answered with a non-success status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class FetchContentTypeError(FetchError):
    """The remote answered with a content type that is not ActivityStreams."""


class FetchIdMismatch(FetchError):
    """The fetched document's id is not the URL it came from."""


class TooManyRedirects(FetchError):
    """The remote redirected more often than allowed."""


class CrossOriginRedirect(FetchError):
    """A redirect led to another scheme, host or port where the caller refuses that."""


class WebFingerError(ProtocolError):
    """A WebFinger resource or document is invalid."""


class VocabularyError(ProtocolError):
    """An activity or object lacks what the protocol requires."""
