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
        """Claim one batch of due jobs and run them to the end; the number run."""
        jobs = await queue.claim(self.ctx, self.worker_id, self.concurrency)
        if jobs:
            await asyncio.gather(*(self._run(job) for job in jobs))
        return len(jobs)

    async def run_until_idle(self, *, max_jobs: int = 1_000_000) -> int:
        """Run due jobs, refilling free slots as each finishes, until none is due or running."""
        return await self._pump(stop=None, max_jobs=max_jobs)

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Run jobs until `stop` is set; jobs in hand are finished, not abandoned."""
        await self._pump(stop=stop, max_jobs=None)

    async def _pump(self, *, stop: asyncio.Event | None, max_jobs: int | None) -> int:
        # A slot frees as soon as its job ends and is refilled at once: one slow peer holds one
        # slot, never a whole batch.
        running: set[asyncio.Task[None]] = set()
        total = 0
        idle_sleep = self.ctx.settings.worker_idle_sleep_seconds
        try:
            while True:
                stopping = stop is not None and stop.is_set()
                claimed: list[Job] = []
                if not stopping and len(running) < self.concurrency:
                    try:
                        claimed = await queue.claim(
                            self.ctx, self.worker_id, self.concurrency - len(running)
                        )
                    except Exception:  # a database hiccup must not end the worker
                        log.exception("claiming jobs failed")
                for job in claimed:
                    running.add(asyncio.create_task(self._run(job)))
                total += len(claimed)
                if max_jobs is not None and total > max_jobs:
                    raise RuntimeError("the queue did not become idle")
                if running:
                    full = len(running) >= self.concurrency
                    _, running = await asyncio.wait(
                        running,
                        return_when=asyncio.FIRST_COMPLETED,
                        timeout=None if full else idle_sleep,
                    )
                    continue
                if stop is None or stopping:
                    return total
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), idle_sleep)
        finally:
            if running:
                await asyncio.gather(*running, return_exceptions=True)

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
