"""The background worker: claims jobs and runs each through its handler, never crashing on one.

`run_until_idle()` is for tests (run every due job, then return); `run_forever()` is for
`serve` and `worker`, stopping cleanly when its stop event is set (SIGTERM).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fediverse_stories import queue
from fediverse_stories.context import Context
from fediverse_stories.db.models import Job

log = logging.getLogger(__name__)

Handler = Callable[[Context, dict[str, Any]], Awaitable[None]]

MAX_ATTEMPTS = 16


class RetryLater(Exception):
    """Run the job again at `when` (e.g. a peer answered 503)."""

    def __init__(self, when: datetime, reason: str) -> None:
        super().__init__(reason)
        self.when = when


class GiveUp(Exception):
    """The job can never succeed; record why and stop trying."""


# Job kinds register here (kind -> handler); each feature module adds its own.
HANDLERS: dict[str, Handler] = {}


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    def register(handler: Handler) -> Handler:
        HANDLERS[kind] = handler
        return handler

    return register


def default_backoff(attempt: int) -> timedelta:
    """About two days over MAX_ATTEMPTS attempts, for failures a handler did not classify."""
    return timedelta(seconds=min(15 + attempt**4, 12 * 3600))


class Worker:
    """Runs due jobs, `concurrency` at a time."""

    def __init__(
        self, ctx: Context, *, concurrency: int = 16, handlers: dict[str, Handler] | None = None
    ) -> None:
        self.ctx = ctx
        self.concurrency = concurrency
        self.handlers = HANDLERS if handlers is None else handlers
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"

    async def run_once(self) -> int:
        """Claim one batch of due jobs and run them; the number run."""
        jobs = await queue.claim(self.ctx, self.worker_id, self.concurrency)
        if jobs:
            await asyncio.gather(*(self._run(job) for job in jobs))
        return len(jobs)

    async def run_until_idle(self, *, max_rounds: int = 10_000) -> int:
        total = 0
        for _ in range(max_rounds):
            ran = await self.run_once()
            if ran == 0:
                return total
            total += ran
        raise RuntimeError("the queue did not become idle")

    async def run_forever(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                ran = await self.run_once()
            except Exception:  # a database hiccup must not end the worker: log and wait
                log.exception("claiming jobs failed")
                ran = 0
            if ran == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.ctx.settings.worker_idle_sleep_seconds)

    async def _run(self, job: Job) -> None:
        handler = self.handlers.get(job.kind)
        if handler is None:
            await queue.give_up(self.ctx, job, f"no handler for job kind {job.kind!r}")
            return
        try:
            # Handlers that judge retries (delivery) need the attempt number; the row has it.
            await handler(self.ctx, {**job.payload, "_attempt": job.attempts})
        except RetryLater as retry:
            await self._retry(job, retry.when, str(retry))
        except GiveUp as reason:
            await queue.give_up(self.ctx, job, str(reason))
        except Exception as error:  # recorded on the job, never lost, never fatal to the worker
            log.exception("job %s (%s) failed", job.id, job.kind)
            when = self.ctx.clock() + default_backoff(job.attempts)
            await self._retry(job, when, f"{type(error).__name__}: {error}")
        else:
            await queue.finish(self.ctx, job)

    async def _retry(self, job: Job, when: datetime, reason: str) -> None:
        if job.attempts >= MAX_ATTEMPTS:
            await queue.give_up(self.ctx, job, f"retries exhausted; last error: {reason}")
        else:
            await queue.retry_at(self.ctx, job, when, reason)
