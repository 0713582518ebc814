"""Origin and ownership checks that need no fetch (DESIGN.md step 5 and 6).

The signer must be the actor; the activity's id and whatever it creates must live on the
actor's host; an Update, Delete or Undo may only name what the actor owns. Objects forwarded by
someone else (an Announce, a reply forwarded by a thread's owner) are fetched from their origin
later, in the worker.
"""

from __future__ import annotations

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


def _origin(uri: str) -> tuple[str, str]:
    parts = urlsplit(uri)
    return parts.scheme.lower(), parts.netloc.lower()


def _valid_id(value: object) -> bool:
    if not isinstance(value, str) or len(value) > MAX_ID:
        return False
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def check_origin(activity: dict[str, Any], signer_uri: str) -> None:
    """Raise OriginError unless the activity is well-formed and owned by its signer."""
    kind = primary_type(activity.get("type"), NEEDS_OBJECT)
    if kind is None:
        raise OriginError("the activity has no type", malformed=True)
    if not _valid_id(activity.get("id")):
        raise OriginError("the activity has no valid id", malformed=True)
    actor = id_of(activity.get("actor"))
    if not _valid_id(actor):
        raise OriginError("the activity has no valid actor", malformed=True)
    assert actor is not None
    if kind in NEEDS_OBJECT and activity.get("object") in (None, "", [], {}):
        raise OriginError(f"a {kind} needs an object", malformed=True)
    if actor != signer_uri:
        raise OriginError("the actor is not the signer")
    if _origin(activity["id"]) != _origin(actor):
        raise OriginError("the activity id is not on the actor's host")
    obj = activity.get("object")
    if kind == "Create":
        _check_created(obj, actor)
    elif kind in ("Update", "Delete"):
        _check_owned(obj, actor, kind)
    elif kind == "Undo":
        _check_undo(obj, actor)


def _check_created(obj: object, actor: str) -> None:
    if not isinstance(obj, dict):
        # A reference is fetched from its origin by the worker: only ever on the actor's host.
        reference = id_of(obj)
        if not _valid_id(reference):
            raise OriginError("the Create names no valid object", malformed=True)
        if _origin(str(reference)) != _origin(actor):
            raise OriginError("the created object is not on the actor's host")
        return
    object_id = obj.get("id")
    if not _valid_id(object_id):
        raise OriginError("the created object has no valid id", malformed=True)
    if _origin(str(object_id)) != _origin(actor):
        raise OriginError("the created object is not on the actor's host")
    attributed = [id_of(a) for a in _as_list(obj.get("attributedTo"))]
    if attributed and actor not in attributed:
        raise OriginError("the created object is attributed to someone else")


def _check_owned(obj: object, actor: str, kind: str) -> None:
    object_id = id_of(obj)
    if not _valid_id(object_id):
        raise OriginError(f"the {kind} names no valid object", malformed=True)
    assert object_id is not None
    if object_id == actor:
        return
    if _origin(object_id) != _origin(actor):
        raise OriginError(f"the {kind} names an object that is not the actor's")
    if isinstance(obj, dict):
        attributed = [id_of(a) for a in _as_list(obj.get("attributedTo"))]
        if attributed and actor not in attributed:
            raise OriginError(f"the {kind} names an object attributed to someone else")


def _check_undo(obj: object, actor: str) -> None:
    object_id = id_of(obj)
    if not _valid_id(object_id):
        raise OriginError("the Undo names no valid object", malformed=True)
    assert object_id is not None
    if _origin(object_id) != _origin(actor):
        raise OriginError("the Undo names an activity that is not the actor's")
    if isinstance(obj, dict) and id_of(obj.get("actor")) not in (None, actor):
        raise OriginError("the Undo names another actor's activity")


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]
