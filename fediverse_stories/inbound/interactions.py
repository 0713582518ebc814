"""Like and Announce of the stories and comments we carry, and their Undo.

The inbox already checked that the signer is the actor. Here: the object must be a story or a
shown comment we carry (an Announce of anything else is not ours to count), each actor counts
once per object, and only the sender's own interactions can be undone.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import IntegrityError

from activitypub.vocab import id_of, primary_type
from fediverse_stories.context import Context
from fediverse_stories.db.models import Tombstone
from fediverse_stories.inbound.dispatch import Refused, handles
from fediverse_stories.services import interactions
from fediverse_stories.services.remote_actors import actor_by_uri, fetch_actor

NAMES = {interactions.LIKE: "like", interactions.ANNOUNCE: "boost"}


@handles(interactions.LIKE, interactions.ANNOUNCE)
async def on_interaction(ctx: Context, activity: dict[str, Any]) -> str:
    kind = primary_type(activity["type"], interactions.COUNTERS) or ""
    object_uri = id_of(activity.get("object"))
    if object_uri is None:
        raise Refused("no object")
    async with ctx.sessions() as session:
        carried = await interactions.target_of(session, object_uri)
    if carried is None:
        # An Announce of a post we do not carry (even by an actor we follow) is not fetched.
        return f"ignored: {kind} of something we do not carry"
    actor = await fetch_actor(ctx, activity["actor"])
    if actor.suspended:
        return f"ignored: {kind} from a deleted or suspended actor"
    async with ctx.sessions() as session:
        undone = await session.get(Tombstone, str(activity["id"]))
    if undone is not None and undone.actor_uri == actor.uri:
        return f"ignored: this {NAMES[kind]} was already undone"
    try:
        async with ctx.sessions.begin() as session:
            target = await interactions.target_of(session, object_uri, lock=True)
            if target is None:
                return f"ignored: {kind} of something we do not carry"
            counted = await interactions.record(
                session, ctx, actor, kind, target, str(activity["id"])
            )
    except IntegrityError:
        counted = False
    if not counted:
        return f"ignored: this {NAMES[kind]} was already counted"
    return f"{NAMES[kind]} counted"


async def undo_interaction(ctx: Context, activity: dict[str, Any]) -> str | None:
    """Undo the sender's own Like or Announce; None when the Undo is of neither (a Follow...).

    The undone activity is matched by its id and the sender, or, for an embedded Like or
    Announce, by the sender, its type and its object: never someone else's interaction.
    """
    obj = activity.get("object")
    kind = primary_type(obj.get("type"), interactions.COUNTERS) if isinstance(obj, dict) else None
    if kind is not None and kind not in interactions.COUNTERS:
        return None
    undone_id = id_of(obj)
    object_uri = id_of(obj.get("object")) if isinstance(obj, dict) else None
    async with ctx.sessions.begin() as session:
        sender = await actor_by_uri(session, activity["actor"])
        if sender is None:
            return None
        row = await interactions.find(
            session, sender, activity_uri=undone_id, kind=kind, object_uri=object_uri
        )
        if row is None:
            if kind is None:
                return None  # a bare id that is no interaction of the sender's: not ours
            if undone_id and await session.get(Tombstone, undone_id) is None:
                # The Undo overtook its Like: remember it so the Like never counts.
                session.add(Tombstone(uri=undone_id, actor_uri=sender.uri, deleted_at=ctx.clock()))
            return f"ignored: no {NAMES[kind]} of the sender's to undo (remembered)"
        name = NAMES.get(row.type, row.type)
        await interactions.withdraw(session, row)
    return f"{name} undone"
