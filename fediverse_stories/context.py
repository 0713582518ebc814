"""The one typed object holding an instance's dependencies: settings, database, client, clock."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from fediverse_stories.db.engine import make_engine, make_sessionmaker
from fediverse_stories.settings import Settings

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    """Everything a request handler, a job or a command needs, built once per process."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    clock: Clock = utc_now
    http: httpx.AsyncClient | None = None
    # Loaded from the database at start-up (or the setting), shared by every process.
    secret_key: str = field(default="", repr=False)

    @classmethod
    def build(
        cls, settings: Settings, *, clock: Clock = utc_now, http: httpx.AsyncClient | None = None
    ) -> Context:
        engine = make_engine(settings.database_url)
        return cls(settings, engine, make_sessionmaker(engine), clock=clock, http=http)

    async def close(self) -> None:
        await self.engine.dispose()
