"""ActivityStreams vocabulary helpers: contexts, content types, the public address, normalisers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

AS_CONTEXT = "https://www.w3.org/ns/activitystreams"
SECURITY_CONTEXT = "https://w3id.org/security/v1"
MULTIKEY_CONTEXT = "https://w3id.org/security/multikey/v1"
DEFAULT_CONTEXT: list[Any] = [AS_CONTEXT, SECURITY_CONTEXT]

ACTIVITY_JSON = "application/activity+json"
LD_JSON_AS = 'application/ld+json; profile="https://www.w3.org/ns/activitystreams"'
JRD_JSON = "application/jrd+json"

PUBLIC = "https://www.w3.org/ns/activitystreams#Public"
PUBLIC_SPELLINGS = frozenset({PUBLIC, "as:Public", "Public"})

ACTOR_TYPES = frozenset({"Person", "Organization", "Application", "Group", "Service"})


def is_public(address: object) -> bool:
    """True for every spelling of the public collection peers use."""
    return isinstance(address, str) and address in PUBLIC_SPELLINGS


def id_of(value: object) -> str | None:
    """The id of a reference that may be a string, an object with an `id`, or a Link's `href`."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, dict):
        for key in ("id", "href"):
            found = value.get(key)
            if isinstance(found, str) and found:
                return found
    return None


def as_list(value: object) -> list[Any]:
    """A property that may be absent, one value or a list, always as a list."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def ids_of(value: object) -> list[str]:
    """Every id in a property that may be one reference or a list of them."""
    return [found for item in as_list(value) if (found := id_of(item)) is not None]


ADDRESS_FIELDS = ("to", "cc", "bto", "bcc", "audience")


def addresses(activity: dict[str, Any], fields: Iterable[str] = ADDRESS_FIELDS) -> list[str]:
    """Every addressee of an activity or object, public spellings normalised to PUBLIC."""
    out: list[str] = []
    for field in fields:
        for address in ids_of(activity.get(field)):
            out.append(PUBLIC if is_public(address) else address)
    return out


def media_type_is_activitystreams(content_type: str | None) -> bool:
    """True for `application/activity+json` or `application/ld+json` with the AS profile.

    Other parameters (charset) are allowed, as peers send them.
    """
    if not content_type:
        return False
    parts = [part.strip() for part in content_type.split(";")]
    media = parts[0].lower()
    if media == ACTIVITY_JSON:
        return True
    if media != "application/ld+json":
        return False
    for param in parts[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "profile":
            profiles = value.strip().strip('"').split()
            if AS_CONTEXT in profiles:
                return True
    return False


def primary_type(value: object, known: Iterable[str] = ()) -> str | None:
    """The one type to act on when `type` may be a string or a list (peers send both).

    From a list, the first type in `known` wins, else the first string; None when there is none.
    """
    if isinstance(value, str):
        return value or None
    if isinstance(value, list):
        strings = [item for item in value if isinstance(item, str) and item]
        known_set = frozenset(known)
        for item in strings:
            if item in known_set:
                return item
        return strings[0] if strings else None
    return None
