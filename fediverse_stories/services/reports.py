"""Reports (Flags) from other servers about our actors and what they wrote, for moderators.

Mastodon sends a Flag from its instance actor when one of its users reports an account here,
with the account and the reported posts as its `object` and the user's words as `content`.
We keep only what is ours among the objects; a moderator reads the report and resolves it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor, Comment, Report, Story
from fediverse_stories.sanitize import plain_text
from fediverse_stories.services.errors import Invalid, NotFound

MAX_OBJECTS = 50  # Mastodon lets a reporter pick a handful of posts; bounded whatever is sent
MAX_COMMENT = 5_000
RECENTLY_RESOLVED = 20


@dataclass(frozen=True)
class Reported:
    """One reported thing of ours, as the moderation page links it."""

    kind: str  # "account", "story" or "comment"
    label: str
    link: str


@dataclass(frozen=True)
class ReportView:
    report: Report
    items: list[Reported]


async def ours(session: AsyncSession, uris: list[str]) -> list[str]:
    """The URIs among `uris` that name our actors, our stories or comments in our threads."""
    wanted = list(dict.fromkeys(uris))[:MAX_OBJECTS]
    found: set[str] = set()
    for query in (
        select(Actor.uri).where(Actor.local.is_(True), Actor.uri.in_(wanted)),
        select(Story.uri).where(Story.local.is_(True), Story.uri.in_(wanted)),
        select(Comment.uri)
        .join(Story, Story.id == Comment.story_id)
        .where(Story.local.is_(True), Comment.uri.in_(wanted)),
    ):
        found.update(uri for uri in (await session.execute(query)).scalars() if uri)
    return [uri for uri in wanted if uri in found]


async def record(
    ctx: Context, activity_uri: str, reporter: Actor, objects: list[str], comment: str
) -> bool:
    """Keep a report; False when this Flag was recorded already."""
    async with ctx.sessions.begin() as session:
        known = select(Report.id).where(Report.activity_uri == activity_uri)
        if (await session.execute(known)).scalar() is not None:
            return False
        session.add(
            Report(
                activity_uri=activity_uri,
                reporter_id=reporter.id,
                objects=json.dumps(objects),
                comment=comment[:MAX_COMMENT],
                created_at=ctx.clock(),
            )
        )
    return True


async def for_moderators(session: AsyncSession) -> tuple[list[ReportView], list[ReportView]]:
    """The open reports (oldest first: the longest waiting) and the latest resolved ones."""
    waiting = select(Report).where(Report.resolved_at.is_(None)).order_by(Report.created_at)
    resolved = (
        select(Report)
        .where(Report.resolved_at.is_not(None))
        .order_by(Report.resolved_at.desc())
        .limit(RECENTLY_RESOLVED)
    )
    return (
        [await _view(session, r) for r in (await session.execute(waiting)).scalars()],
        [await _view(session, r) for r in (await session.execute(resolved)).scalars()],
    )


async def resolve(ctx: Context, report_id: int, moderator: str) -> Report:
    """Mark a report dealt with, by whom and when."""
    async with ctx.sessions.begin() as session:
        report = await session.get(Report, report_id)
        if report is None:
            raise NotFound("no such report")
        if report.resolved_at is not None:
            raise Invalid(f"the report was resolved by {report.resolved_by} already")
        report.resolved_at = ctx.clock()
        report.resolved_by = moderator
        return report


async def _view(session: AsyncSession, report: Report) -> ReportView:
    uris = json.loads(report.objects)
    items: list[Reported] = []
    for actor in (await session.execute(select(Actor).where(Actor.uri.in_(uris)))).scalars():
        items.append(Reported("account", actor.handle, f"/users/{actor.username}"))
    for story in (await session.execute(select(Story).where(Story.uri.in_(uris)))).scalars():
        items.append(Reported("story", story.title, f"/stories/{story.id}"))
    comments = select(Comment).where(Comment.uri.in_(uris))
    for comment in (await session.execute(comments)).scalars():
        words = plain_text(comment.content_html)
        label = f"{comment.author.handle}: {words[:120]}{'…' if len(words) > 120 else ''}"
        items.append(
            Reported("comment", label, f"/stories/{comment.story_id}#comment-{comment.id}")
        )
    return ReportView(report, items)
