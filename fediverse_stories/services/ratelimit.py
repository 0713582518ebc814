"""Fixed-window rate limits kept in the database, so every process of an instance shares them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
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
    """Count one hit against `key`; returns the count in the current window."""
    row = await session.get(RateLimit, key, with_for_update=True)
    if row is None:
        row = RateLimit(key=key, window_start=now, count=0)
        session.add(row)
    elif _expired(row, window, now):
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
