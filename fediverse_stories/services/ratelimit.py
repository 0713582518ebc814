"""Fixed-window rate limits kept in the database, so every process of an instance shares them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from fediverse_stories.db.models import RateLimit


async def is_limited(
    session: AsyncSession, key: str, limit: int, window: int, now: datetime
) -> bool:
    """True when `key` already reached `limit` hits in the current window."""
    row = await session.get(RateLimit, key)
    if row is None or _expired(row, window, now):
        return False
    return row.count >= limit


async def hit(session: AsyncSession, key: str, window: int, now: datetime) -> int:
    """Count one hit against `key`; returns the count in the current window.

    The row is made with INSERT ... ON CONFLICT DO NOTHING and then locked, so concurrent hits
    (several processes, or copies of one request) neither fail nor lose a count.
    """
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(RateLimit)
        .values(key=key, window_start=now, count=0)
        .on_conflict_do_nothing(index_elements=["key"])
    )
    row = await session.get(RateLimit, key, with_for_update=True, populate_existing=True)
    assert row is not None
    if _expired(row, window, now):
        row.window_start, row.count = now, 0
    row.count += 1
    await session.flush()
    return row.count


async def purge_expired(session: AsyncSession, window: int, now: datetime) -> None:
    await session.execute(
        delete(RateLimit).where(RateLimit.window_start < now - timedelta(seconds=window))
    )


async def seconds_left(session: AsyncSession, key: str, window: int, now: datetime) -> int:
    row = (
        await session.execute(select(RateLimit).where(RateLimit.key == key))
    ).scalar_one_or_none()
    if row is None:
        return 0
    end = row.window_start + timedelta(seconds=window)
    return max(1, int((end - now).total_seconds()) + 1)


def _expired(row: RateLimit, window: int, now: datetime) -> bool:
    return row.window_start + timedelta(seconds=window) <= now
