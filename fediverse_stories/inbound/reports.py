"""Flag: a report from another server about our actors or what they wrote (services/reports)."""

from __future__ import annotations

from typing import Any

from activitypub.vocab import as_list, id_of
from fediverse_stories.context import Context
from fediverse_stories.inbound.dispatch import handles
from fediverse_stories.sanitize import plain_text
from fediverse_stories.services import reports
from fediverse_stories.services.remote_actors import fetch_actor


@handles("Flag")
async def on_flag(ctx: Context, activity: dict[str, Any]) -> str:
    named = [id_of(item) for item in as_list(activity.get("object"))[: reports.MAX_OBJECTS]]
    async with ctx.sessions() as session:
        mine = await reports.ours(session, [uri for uri in named if isinstance(uri, str)])
    if not mine:
        return "ignored: the report names nothing of ours"
    reporter = await fetch_actor(ctx, activity["actor"])
    content = activity.get("content")
    comment = plain_text(content) if isinstance(content, str) else ""
    if not await reports.record(ctx, str(activity["id"]), reporter, mine, comment):
        return "ignored: this report was recorded already"
    return f"report recorded ({len(mine)} of ours named)"
