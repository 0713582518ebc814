"""The one typed object holding an instance's dependencies: settings, database, client, clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from activitypub.fetch import make_guarded_client
from activitypub.keys import PrivateKey
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
    http: httpx.AsyncClient
    clock: Clock = utc_now
    owns_http: bool = False
    # Loaded from the database at start-up (or the setting), shared by every process.
    secret_key: str = field(default="", repr=False)
    # Loading a private key from PEM costs ~48 ms: each process keeps the loaded ones.
    private_keys: dict[int, PrivateKey] = field(default_factory=dict, repr=False)
    # At most a few concurrent deliveries per host: one slow peer cannot take every slot.
    host_slots: dict[str, asyncio.Semaphore] = field(default_factory=dict, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, *, clock: Clock = utc_now, http: httpx.AsyncClient | None = None
    ) -> Context:
        """The process's context; the one place its outbound (guarded) HTTP client is built."""
        engine = make_engine(settings.database_url)
        owns_http = http is None
        if http is None:
            http = make_guarded_client(allow_private=settings.allow_private_addresses)
        return cls(
            settings, engine, make_sessionmaker(engine), http, clock=clock, owns_http=owns_http
        )

    def host_slot(self, host: str, limit: int = 4) -> asyncio.Semaphore:
        slot = self.host_slots.get(host)
        if slot is None:
            slot = self.host_slots[host] = asyncio.Semaphore(limit)
        return slot

    async def close(self) -> None:
        if self.owns_http:
            await self.http.aclose()
        await self.engine.dispose()
