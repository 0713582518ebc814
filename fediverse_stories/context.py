"""The one typed object holding an instance's dependencies: settings, database, client, clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import httpx
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, sessionmaker

from activitypub.keys import PrivateKey
from fediverse_stories.db.engine import (
    make_engine,
    make_one_hop_sessionmaker,
    make_sessionmaker,
)
from fediverse_stories.http import SignedPoster, make_client
from fediverse_stories.settings import Settings
from fediverse_stories.signing_pool import SigningPool
from fediverse_stories.wakeup import Wakeup

Clock = Callable[[], datetime]
T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    """Everything a request handler, a job or a command needs, built once per process."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    # Deliveries' signed POSTs, through the same guard and connections as `http`.
    poster: SignedPoster
    clock: Clock = utc_now
    owns_http: bool = False
    # Loaded from the database at start-up (or the setting), shared by every process.
    secret_key: str = field(default="", repr=False)
    # Loading a private key from PEM costs ~48 ms: each process keeps the loaded ones.
    private_keys: dict[int, PrivateKey] = field(default_factory=dict, repr=False)
    # At most a few concurrent deliveries per host: one slow peer cannot take every slot.
    host_slots: dict[str, asyncio.Semaphore] = field(default_factory=dict, repr=False)
    # SQLite only: synchronous sessions that never wait for a lock (run on the event loop),
    # those that do and the one thread that runs them (`in_one_hop`).
    inline_sessions: sessionmaker[Session] | None = field(default=None, repr=False)
    one_hop_sessions: sessionmaker[Session] | None = field(default=None, repr=False)
    one_hop_thread: ThreadPoolExecutor | None = field(default=None, repr=False)
    # The connection inline Core steps run on, kept open between them (`on_connection`).
    kept_connection: Connection | None = field(default=None, repr=False)
    # Where our signatures are made when there are several cores (started on first use).
    signing: SigningPool | None = field(default=None, repr=False)
    # Wakes this process's worker when jobs are queued here (wakeup.py).
    wakeup: Wakeup = field(default_factory=Wakeup, repr=False)

    @classmethod
    def build(
        cls, settings: Settings, *, clock: Clock = utc_now, http: httpx.AsyncClient | None = None
    ) -> Context:
        """The process's context; the one place its outbound (guarded) HTTP client is built."""
        engine = make_engine(settings.database_url)
        owns_http = http is None
        if http is None:
            http, poster = make_client(settings)
        else:
            poster = SignedPoster(http)
        one_hop = make_one_hop_sessionmaker(settings.database_url)
        return cls(
            settings,
            engine,
            make_sessionmaker(engine),
            http,
            poster,
            clock=clock,
            owns_http=owns_http,
            inline_sessions=make_one_hop_sessionmaker(settings.database_url, busy_timeout=0),
            one_hop_sessions=one_hop,
            # One thread: SQLite has one writer, and steps queued behind each other beat
            # writers spinning in the busy handler.
            one_hop_thread=ThreadPoolExecutor(1, "db-one-hop") if one_hop else None,
            signing=SigningPool(settings.signing_processes) if settings.signing_processes else None,
        )

    async def in_one_hop(self, step: Callable[[Session], T], *, inline: bool = False) -> T:
        """Run `step` in one transaction, committed when it returns, in one go.

        On SQLite the step runs on a synchronous connection in the one-hop thread (the async
        engine would hop to aiosqlite's thread and back once per statement). With `inline`, it
        runs right here on the event loop when the database is free, as the bare ceiling of
        bench/inbox.py does (a short transaction costs less than any hop), and goes to the
        thread only if another writer holds the lock: waiting for it there blocks nothing
        else. An inline step must be safe to run again from the start (the first attempt is
        rolled back whole) and short. On PostgreSQL the step runs in an async session through
        `run_sync`, with no thread at all.
        """
        if self.one_hop_sessions is None:
            async with self.sessions.begin() as session:
                return await session.run_sync(step)

        def in_session(sessions: sessionmaker[Session]) -> T:
            with sessions.begin() as session:
                return step(session)

        return await self._on_sqlite(in_session, inline)

    async def on_connection(self, step: Callable[[Connection], T], *, inline: bool = False) -> T:
        """`in_one_hop` for a step that needs no ORM session, only a Core connection: the
        session's own bookkeeping costs more than the inbox's whole read (about 45 us against
        20, measured on SQLite)."""
        if self.one_hop_sessions is None:
            async with self.engine.begin() as connection:
                return await connection.run_sync(step)
        if inline and self.inline_sessions is not None:
            # One connection kept for these steps: checking one out of the pool and back for
            # each cost half as much as the inbox's whole read.
            kept = self._kept_connection(self.inline_sessions)
            try:
                with kept.begin():
                    return step(kept)
            except OperationalError as error:
                if not _locked(error):
                    raise

        def on_engine(sessions: sessionmaker[Session]) -> T:
            with sessions.kw["bind"].begin() as connection:
                return step(connection)

        return await self._on_sqlite(on_engine, inline=False)

    def data_version(self) -> int | None:
        """SQLite's `PRAGMA data_version` on the kept connection: it changes when another
        connection commits (another process, or this one's other connections). None on
        PostgreSQL, or while another writer holds the lock."""
        if self.inline_sessions is None:
            return None
        kept = self._kept_connection(self.inline_sessions)
        try:
            with kept.begin():
                return int(kept.exec_driver_sql("PRAGMA data_version").scalar_one())
        except OperationalError as error:
            if not _locked(error):
                raise
            return None

    def _kept_connection(self, sessions: sessionmaker[Session]) -> Connection:
        connection = self.kept_connection
        if connection is None or connection.closed or connection.invalidated:
            connection = self.kept_connection = sessions.kw["bind"].connect()
        return connection

    async def _on_sqlite(self, run: Callable[[sessionmaker[Session]], T], inline: bool) -> T:
        """`run` on the event loop if `inline` and no other writer holds the lock, else in the
        one-hop thread (where waiting for the lock blocks nothing else)."""
        if inline and self.inline_sessions is not None:
            try:
                return run(self.inline_sessions)
            except OperationalError as error:
                if not _locked(error):
                    raise
        assert self.one_hop_sessions is not None and self.one_hop_thread is not None
        return await asyncio.get_running_loop().run_in_executor(
            self.one_hop_thread, run, self.one_hop_sessions
        )

    def host_slot(self, host: str, limit: int = 4) -> asyncio.Semaphore:
        slot = self.host_slots.get(host)
        if slot is None:
            slot = self.host_slots[host] = asyncio.Semaphore(limit)
        return slot

    async def close(self) -> None:
        if self.kept_connection is not None:
            self.kept_connection.close()
        if self.signing is not None:
            await self.signing.close()
        if self.owns_http:
            await self.http.aclose()
        await self.engine.dispose()
        if self.one_hop_thread is not None:
            self.one_hop_thread.shutdown(wait=True)
        for sessions in (self.inline_sessions, self.one_hop_sessions):
            if sessions is not None:
                sessions.kw["bind"].dispose()


def _locked(error: OperationalError) -> bool:
    """SQLite's "database is locked" (SQLITE_BUSY): another connection holds the write lock."""
    return "locked" in str(error.orig) or "busy" in str(error.orig)
