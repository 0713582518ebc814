"""Mentions in a member's comment: `@name` (a local account) or `@name@host` (anyone).

A handle that resolves to an actor becomes a link in the comment (Mastodon's h-card markup), a
`Mention` in its Note's tags, an address in its `cc` and a delivery to that actor's server:
Mastodon notifies only the actors a post tags. A handle that does not resolve (unknown, blocked,
unreachable) stays plain text; the comment is posted either way.
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from activitypub.errors import ProtocolError
from activitypub.vocab import as_list, id_of
from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Comment, CommentMention
from fediverse_stories.services.actors import local_actor
from fediverse_stories.services.domains import is_refused
from fediverse_stories.services.errors import ServiceError
from fediverse_stories.services.follows import resolve_remote

# Mastodon's Account::MENTION_RE, with a port allowed on the host (handles carry one in
# development); not after `=`, `/` or a word character, so e-mail addresses and URLs are left be.
MENTION = re.compile(
    r"(?<![=/\w])@(?P<user>[a-z0-9_]+(?:[.-]+[a-z0-9_]+)*)"
    r"(?:@(?P<host>\w+(?:[.-]+\w+)*(?::\d{1,5})?))?",
    re.IGNORECASE,
)
# A remote Note's tags read for Mentions of our actors: enough for any real post, bounded.
MAX_TAGS_READ = 100
# Each unknown handle may cost a WebFinger lookup and an actor fetch while the member waits.
MAX_MENTIONS = 10

Mentioned = dict[str, Actor]  # handle key (see `_key`) -> the actor it names


def _key(match: re.Match[str], our_host: str) -> str:
    host = (match["host"] or our_host).lower()
    return f"{match['user'].lower()}@{host}"


async def resolve(ctx: Context, text: str) -> Mentioned:
    """The actors the text mentions, of its first MAX_MENTIONS distinct handles.

    The handles are looked up at once, so a comment naming several unreachable servers waits
    for the slowest lookup (bounded by the fetch deadlines), not for their sum.
    """
    written: dict[str, str] = {}  # handle key -> the user part as written
    for match in MENTION.finditer(text):
        key = _key(match, ctx.settings.host)
        if key not in written:
            if len(written) == MAX_MENTIONS:
                break
            written[key] = match["user"]
    actors = await asyncio.gather(
        *(_resolve_one(ctx, user, key.partition("@")[2]) for key, user in written.items())
    )
    return {key: actor for key, actor in zip(written, actors, strict=True) if actor is not None}


async def _resolve_one(ctx: Context, user: str, host: str) -> Actor | None:
    async with ctx.sessions() as session:
        if host == ctx.settings.host.lower():
            actor = await local_actor(session, ctx, user.lower())
            return actor if actor is not None and actor.type != "Application" else None
        if await is_refused(session, host):
            return None
        known = (
            await session.execute(
                select(Actor).where(
                    Actor.local.is_(False),
                    func.lower(Actor.username) == user.lower(),
                    Actor.domain == host,
                )
            )
        ).scalar_one_or_none()
    if known is not None:
        return known
    try:
        return await resolve_remote(ctx, f"{user}@{host}")
    except (ProtocolError, ServiceError):
        return None


def linked_line(line: str, mentioned: Mentioned, our_host: str) -> str:
    """One line of plain text as escaped HTML, each resolved handle a link to its actor."""
    parts: list[str] = []
    written = 0
    for match in MENTION.finditer(line):
        actor = mentioned.get(_key(match, our_host))
        if actor is None:
            continue
        parts.append(html.escape(line[written : match.start()]))
        href = html.escape(actor.url or actor.uri)
        parts.append(
            f'<span class="h-card" translate="no"><a href="{href}" class="u-url mention">'
            f"@<span>{html.escape(actor.username)}</span></a></span>"
        )
        written = match.end()
    parts.append(html.escape(line[written:]))
    return "".join(parts)


def record(session: AsyncSession, comment_id: int, actors: Iterable[Actor]) -> None:
    """Keep whom a comment mentions, so its Note keeps tagging them when served again."""
    for actor_id in dict.fromkeys(actor.id for actor in actors):
        session.add(CommentMention(comment_id=comment_id, actor_id=actor_id))


async def record_tagged(session: AsyncSession, comment: Comment, note: dict[str, Any]) -> None:
    """Keep which of our actors a remote comment tags as a Mention (for their notifications)."""
    hrefs = {
        href
        for tag in as_list(note.get("tag"))[:MAX_TAGS_READ]
        if isinstance(tag, dict) and "Mention" in as_list(tag.get("type"))
        for href in [id_of(tag.get("href"))]
        if isinstance(href, str)
    }
    if not hrefs:
        return
    ours = select(Actor.id).where(Actor.local.is_(True), Actor.uri.in_(hrefs))
    actor_ids = list((await session.execute(ours)).scalars())
    if actor_ids:
        await session.flush()  # the comment's id
        session.add_all(CommentMention(comment_id=comment.id, actor_id=i) for i in actor_ids)


async def of_comment(session: AsyncSession, comment_id: int) -> list[Actor]:
    """The actors a comment mentions."""
    rows = await session.execute(
        select(Actor)
        .join(CommentMention, CommentMention.actor_id == Actor.id)
        .where(CommentMention.comment_id == comment_id)
        .order_by(Actor.id)
    )
    return list(rows.scalars())
