"""Waking the worker when jobs are queued, instead of at its next poll.

A worker with nothing to do used to sleep `FEDIVERSE_STORIES_WORKER_IDLE_SLEEP_SECONDS` (1 s)
between claims, so a reply arriving at the inbox or a story published from the web waited up
to a second before anything happened. Now:

- in the worker's own process, whatever queues a job wakes it once its transaction has
  committed: ORM sessions through `mark_queued` (an `after_commit` hook), the inbox's Core
  steps by calling `Wakeup.notify` themselves;
- on SQLite, an idle worker also watches `PRAGMA data_version`, which changes when another
  connection (another process: a CLI command, a web process) commits, every
  WATCH_SECONDS: a read of shared memory, no query of the jobs table.

The poll stays as the backstop (and is the only cross-process signal on PostgreSQL for now).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

# How often an idle worker on SQLite looks for other connections' commits.
WATCH_SECONDS = 0.02

_QUEUED = "fediverse_stories.jobs_queued"


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


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    wakeup: Any = session.info.pop(_QUEUED, None)
    if isinstance(wakeup, Wakeup):
        wakeup.notify()


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_QUEUED, None)  # nothing was queued after all
