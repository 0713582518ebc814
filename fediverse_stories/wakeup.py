"""Waking the worker when jobs are queued, instead of at its next poll.

A worker with nothing to do used to sleep `FEDIVERSE_STORIES_WORKER_IDLE_SLEEP_SECONDS` (1 s)
between claims, so a reply arriving at the inbox or a story published from the web waited up
to a second before anything happened. Now:

- in the worker's own process, whatever queues a job wakes it once its transaction has
  committed: ORM sessions through `mark_queued` (an `after_commit` hook), the inbox's Core
  steps by calling `Wakeup.notify` themselves;
- on SQLite, an idle worker also watches `PRAGMA data_version`, which changes when another
  connection (another process: a CLI command, a web process) commits, every
  WATCH_SECONDS: a read of shared memory, no query of the jobs table;
- on PostgreSQL, a transaction that queues jobs also sends `NOTIFY fediverse_stories_jobs`
  (delivered when it commits), and every running worker LISTENs on a connection of its own.

The poll stays as the backstop (a lost notification, a dropped listening connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlalchemy.orm import Session

log = logging.getLogger(__name__)

# How often an idle worker on SQLite looks for other connections' commits.
WATCH_SECONDS = 0.02

_QUEUED = "fediverse_stories.jobs_queued"
# PostgreSQL's channel for "jobs were queued" between processes.
CHANNEL = "fediverse_stories_jobs"


class Wakeup:
    """One process's signal from those that queue jobs to its worker; safe from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def attach(self) -> asyncio.Event:
        """The event a worker waits on, bound to the worker's (the running) event loop."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        return self._event

    def notify(self) -> None:
        """Jobs were queued and committed: wake the worker, if one runs in this process."""
        loop, woken = self._loop, self._event
        if loop is None or woken is None or loop.is_closed():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if here is loop:
            woken.set()
        else:  # a commit in another thread (the one-hop thread) or another loop
            loop.call_soon_threadsafe(woken.set)


def mark_queued(session: Session | AsyncSession, wakeup: Wakeup) -> None:
    """The session's transaction queues jobs: wake the worker once it commits."""
    session.info[_QUEUED] = wakeup


def announce(connection: Connection) -> None:
    """Jobs were queued in this connection's transaction: tell other processes' workers when
    it commits (PostgreSQL; elsewhere nothing to do)."""
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"NOTIFY {CHANNEL}")


@event.listens_for(Session, "before_commit")
def _before_commit(session: Session) -> None:
    if _QUEUED in session.info:
        announce(session.connection())


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    wakeup: Any = session.info.pop(_QUEUED, None)
    if isinstance(wakeup, Wakeup):
        wakeup.notify()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_QUEUED, None)  # nothing was queued after all


@contextlib.asynccontextmanager
async def listening(engine: AsyncEngine, wakeup: Wakeup) -> AsyncIterator[None]:
    """For the life of the block, other processes' NOTIFYs wake this worker (PostgreSQL, on a
    connection of its own; elsewhere, and if listening fails, the poll is the backstop)."""
    if engine.dialect.name != "postgresql":
        yield
        return

    def heard(*_: Any) -> None:
        wakeup.notify()

    connection = None
    driver: Any = None
    try:
        connection = await engine.connect()
        raw: Any = (await connection.get_raw_connection()).driver_connection  # asyncpg's
        await raw.add_listener(CHANNEL, heard)
        driver = raw
    except Exception:  # the worker still polls; a database hiccup must not stop it
        log.warning("listening for queued jobs failed; polling instead", exc_info=True)
    try:
        yield
    finally:
        if driver is not None:
            with contextlib.suppress(Exception):
                await driver.remove_listener(CHANNEL, heard)
        if connection is not None:
            await connection.close()
