"""Origin and ownership checks that need no fetch (DESIGN.md step 5 and 6).

The signer must be the actor; the activity's id and whatever it creates must live on the
actor's host; an Update, Delete or Undo may only name what the actor owns. Objects forwarded by
someone else (an Announce, a reply forwarded by a thread's owner) are fetched from their origin
later, in the worker.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from activitypub.vocab import id_of, primary_type

# Types whose `object` must be present.
NEEDS_OBJECT = frozenset(
    {
        "Follow",
        "Accept",
        "Reject",
        "Undo",
        "Create",
        "Update",
        "Delete",
        "Like",
        "Announce",
        "Add",
        "Remove",
        "Block",
        "Flag",
        "Move",
        "EmojiReact",
    }
)
MAX_ID = 2048


class OriginError(Exception):
    """The activity cannot be accepted; `malformed` distinguishes 400 from 403."""

    def __init__(self, reason: str, *, malformed: bool = False) -> None:
        super().__init__(reason)
        self.malformed = malformed


Origin = tuple[str, str]  # (scheme, host[:port]), lower-cased


def _origin_of(value: object) -> Origin | None:
    """The origin of a valid http(s) id, or None when `value` is not one. Each id is split once:
    the inbox checks every activity with this, and splitting a URL is most of the check's cost."""
    if not isinstance(value, str) or len(value) > MAX_ID:
        return None
    try:
        parts = urlsplit(value)
    except ValueError:  # "http://[::1" and the like
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.scheme, parts.netloc.lower()


# An actor's id comes back in every activity it sends (ids are at most MAX_ID long).
_actor_origin = lru_cache(maxsize=1024)(_origin_of)


def check_origin(activity: dict[str, Any], signer_uri: str) -> None:
    """Raise OriginError unless the activity is well-formed and owned by its signer."""
    kind = primary_type(activity.get("type"), NEEDS_OBJECT)
    if kind is None:
        raise OriginError("the activity has no type", malformed=True)
    activity_origin = _origin_of(activity.get("id"))
    if activity_origin is None:
        raise OriginError("the activity has no valid id", malformed=True)
    actor = id_of(activity.get("actor"))
    actor_origin = _actor_origin(actor) if isinstance(actor, str) else None
    if actor_origin is None:
        raise OriginError("the activity has no valid actor", malformed=True)
    assert actor is not None
    if kind in NEEDS_OBJECT and activity.get("object") in (None, "", [], {}):
        raise OriginError(f"a {kind} needs an object", malformed=True)
    if actor != signer_uri:
        raise OriginError("the actor is not the signer")
    if activity_origin != actor_origin:
        raise OriginError("the activity id is not on the actor's host")
    obj = activity.get("object")
    if kind == "Create":
        _check_created(obj, actor, actor_origin)
    elif kind in ("Update", "Delete"):
        _check_owned(obj, actor, actor_origin, kind)
    elif kind == "Undo":
        _check_undo(obj, actor, actor_origin)


def _check_created(obj: object, actor: str, actor_origin: Origin) -> None:
    if not isinstance(obj, dict):
        # A reference is fetched from its origin by the worker: only ever on the actor's host.
        reference_origin = _origin_of(id_of(obj))
        if reference_origin is None:
            raise OriginError("the Create names no valid object", malformed=True)
        if reference_origin != actor_origin:
            raise OriginError("the created object is not on the actor's host")
        return
    object_origin = _origin_of(obj.get("id"))
    if object_origin is None:
        raise OriginError("the created object has no valid id", malformed=True)
    if object_origin != actor_origin:
        raise OriginError("the created object is not on the actor's host")
    attributed = [id_of(a) for a in _as_list(obj.get("attributedTo"))]
    if attributed and actor not in attributed:
        raise OriginError("the created object is attributed to someone else")


def _check_owned(obj: object, actor: str, actor_origin: Origin, kind: str) -> None:
    object_id = id_of(obj)
    object_origin = _origin_of(object_id)
    if object_origin is None:
        raise OriginError(f"the {kind} names no valid object", malformed=True)
    if object_id == actor:
        return
    if object_origin != actor_origin:
        raise OriginError(f"the {kind} names an object that is not the actor's")
    if isinstance(obj, dict):
        attributed = [id_of(a) for a in _as_list(obj.get("attributedTo"))]
        if attributed and actor not in attributed:
            raise OriginError(f"the {kind} names an object attributed to someone else")


def _check_undo(obj: object, actor: str, actor_origin: Origin) -> None:
    object_origin = _origin_of(id_of(obj))
    if object_origin is None:
        raise OriginError("the Undo names no valid object", malformed=True)
    if object_origin != actor_origin:
        raise OriginError("the Undo names an activity that is not the actor's")
    if isinstance(obj, dict) and id_of(obj.get("actor")) not in (None, actor):
        raise OriginError("the Undo names another actor's activity")


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
