"""Searching the stories we carry: ours and the network's, public ones only."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fediverse_stories.db import fulltext
from fediverse_stories.db.models import Story

PAGE_SIZE = 20


@dataclass(frozen=True)
class Results:
    words: list[str]  # what was searched for, as matched
    stories: list[Story]  # best match first
    more: bool  # another page follows


async def stories(session: AsyncSession, query: str, *, page: int = 1) -> Results:
    """Public stories (local and from the network) containing every word of `query` in their
    title, summary or text; a query with no words finds nothing."""
    words = fulltext.terms(query)
    if not words:
        return Results(words, [], more=False)
    dialect = session.get_bind().dialect.name
    statement, parameters = fulltext.matching_ids(
        dialect, words, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE
    )
    ids = list((await session.execute(statement, parameters)).scalars())
    found = {
        story.id: story
        for story in (await session.execute(select(Story).where(Story.id.in_(ids)))).scalars()
    }
    ordered = [found[i] for i in ids[:PAGE_SIZE] if i in found]
    return Results(words, ordered, more=len(ids) > PAGE_SIZE)
