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
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from fediverse_stories import queue, retention
from fediverse_stories.context import Context
from fediverse_stories.queue import ClaimedJob
from fediverse_stories.wakeup import WATCH_SECONDS, listening

log = logging.getLogger(__name__)

Handler = Callable[[Context, dict[str, Any]], Awaitable[None]]

MAX_ATTEMPTS = 16
# Jobs for one remote host that one worker runs at once (deliveries to one slow peer).
HOST_CONCURRENCY = 4
PURGE_INTERVAL_SECONDS = 3600
# After a claim that took every due job, a busy worker waits this long (or its idle sleep, if
# shorter) before claiming again: a fan-out's tail otherwise ran an empty claim per finished
# job (130 of them for 1,000 deliveries). Jobs queued meanwhile wait at most this long.
CLAIM_AGAIN_SECONDS = 0.05


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
    """Runs due jobs, `concurrency` at a time (by default the setting `worker_jobs`)."""

    def __init__(
        self,
        ctx: Context,
        *,
        concurrency: int | None = None,
        handlers: dict[str, Handler] | None = None,
        stop_grace_seconds: float | None = None,
    ) -> None:
        self.ctx = ctx
        self.concurrency = ctx.settings.worker_jobs if concurrency is None else concurrency
        # After SIGTERM, jobs in hand get this long to finish; any still running are then
        # cancelled and released (queued again at once), not left claimed until their lease ends.
        self.stop_grace_seconds = (
            ctx.settings.worker_stop_grace_seconds
            if stop_grace_seconds is None
            else stop_grace_seconds
        )
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
        """Run jobs until `stop` is set; jobs in hand are then finished within the stop grace,
        and any still running after it are cancelled and released, never left claimed."""
        async with listening(self.ctx.engine, self.ctx.wakeup):  # other processes' jobs
            await self._pump(stop=stop, max_jobs=None)

    async def _pump(self, *, stop: asyncio.Event | None, max_jobs: int | None) -> int:
        # A slot frees as soon as its job ends and is refilled at once: one slow peer holds one
        # slot, never a whole batch.
        running: dict[asyncio.Task[None], ClaimedJob] = {}
        total = 0
        # Claim in groups (a quarter of the slots at least) rather than after every job: each
        # claim is a transaction, and a fan-out runs thousands of jobs.
        group = max(1, self.concurrency // 4)
        # Set by a finishing job when the pump has something to do again (a group of slots
        # free, or none running). It used to wake after every job and wait on every running
        # task each time (asyncio.wait adds and removes a callback on each): work per job that
        # led to no claim (BENCHMARKS.md, section 2).
        freed = asyncio.Event()

        def finished(task: asyncio.Task[None]) -> None:
            running.pop(task, None)
            if not running or self.concurrency - len(running) >= group:
                freed.set()

        if stop is not None and self.ctx.signing is not None:
            await self.ctx.signing.start()  # a long-running worker will sign: be ready
        idle_sleep = self.ctx.settings.worker_idle_sleep_seconds
        loop = asyncio.get_running_loop()
        next_claim_at = 0.0
        woken = self.ctx.wakeup.attach()  # set when this process queues jobs (wakeup.py)
        renewer = asyncio.create_task(self._renew_leases(running))
        # A long-running worker also keeps the queue's table from growing without end.
        sweeper = asyncio.create_task(self._purge_finished()) if stop is not None else None
        try:
            while True:
                stopping = stop is not None and stop.is_set()
                if stopping:
                    return total
                claimed: list[ClaimedJob] = []
                freed.clear()
                free = self.concurrency - len(running)
                wanted = free >= group or (free and not running)
                if woken.is_set():  # new jobs were committed: worth a claim at once
                    woken.clear()
                    next_claim_at = 0.0
                if wanted and (not running or loop.time() >= next_claim_at):
                    try:
                        found = await queue.claim_due(
                            self.ctx,
                            self.worker_id,
                            free,
                            busy_hosts=Counter(j.host for j in running.values() if j.host),
                            per_host=HOST_CONCURRENCY,
                        )
                    except Exception:  # a database hiccup must not end the worker
                        log.exception("claiming jobs failed")
                    else:
                        claimed = found.jobs
                        if found.saw_all_due:
                            next_claim_at = loop.time() + min(CLAIM_AGAIN_SECONDS, idle_sleep)
                for job in claimed:
                    task = asyncio.create_task(self._run(job))
                    running[task] = job
                    task.add_done_callback(finished)
                total += len(claimed)
                if max_jobs is not None and total > max_jobs:
                    raise RuntimeError("the queue did not become idle")
                if running:
                    full = len(running) >= self.concurrency
                    # Not full: wake to claim again once the cool-down ends, else after idle_sleep.
                    cooling = next_claim_at - loop.time()
                    until_claim = cooling if cooling > 0 else idle_sleep
                    signals = [asyncio.ensure_future(freed.wait())]
                    if stop is not None:
                        signals.append(asyncio.ensure_future(stop.wait()))
                    if not full:  # a free slot: new jobs are worth waking for
                        signals.append(asyncio.ensure_future(woken.wait()))
                    try:
                        await asyncio.wait(
                            signals,
                            return_when=asyncio.FIRST_COMPLETED,
                            timeout=None if full else until_claim,
                        )
                    finally:
                        for signal in signals:
                            if not signal.done():
                                signal.cancel()
                    continue
                if stop is None:
                    return total
                await self._idle(stop, woken, idle_sleep)
        finally:
            try:
                if running:
                    await self._drain(running)
            finally:
                for helper in (renewer, sweeper):
                    if helper is not None:
                        helper.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await helper

    async def _idle(self, stop: asyncio.Event, woken: asyncio.Event, idle_sleep: float) -> None:
        """Wait with nothing to run: until stop, a wake-up from this process, another
        connection's commit (SQLite's data_version, looked at every WATCH_SECONDS), or
        idle_sleep, the backstop."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + idle_sleep
        watching = self.ctx.inline_sessions is not None  # SQLite
        version = self.ctx.data_version()  # None while another writer holds the lock
        signals = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(woken.wait())]
        try:
            while (remaining := deadline - loop.time()) > 0:
                watch = min(remaining, WATCH_SECONDS) if watching else remaining
                done, _ = await asyncio.wait(
                    signals, timeout=watch, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    return
                if watching:
                    now = self.ctx.data_version()
                    if version is not None and now is not None and now != version:
                        return
                    version = version if version is not None else now
        finally:
            for signal in signals:
                signal.cancel()

    async def _purge_finished(self) -> None:
        """At start and then every hour, delete finished work past keeping (retention.py)."""
        while True:
            try:
                purged = await retention.purge(self.ctx)
                if any(purged.values()):
                    log.info("purged %s", ", ".join(f"{n} {kind}" for kind, n in purged.items()))
            except Exception:  # a database hiccup: the next round tries again
                log.exception("purging finished work failed")
            await asyncio.sleep(PURGE_INTERVAL_SECONDS)

    async def _renew_leases(self, running: dict[asyncio.Task[None], ClaimedJob]) -> None:
        """Every third of the lease, extend the leases of the jobs in hand: only a worker that
        died (or hangs) lets a lease expire, so only its jobs are taken over and run again."""
        interval = self.ctx.settings.job_lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            ids = [job.id for task, job in list(running.items()) if not task.done()]
            try:
                await queue.renew(self.ctx, self.worker_id, ids)
            except Exception:  # a database hiccup: the next round tries again
                log.exception("renewing job leases failed")

    async def _drain(self, running: dict[asyncio.Task[None], ClaimedJob]) -> None:
        """Let jobs in hand finish within the stop grace; cancel and release the rest."""
        running = dict(running)  # a job leaves the pump's own dict as it ends
        _, late = await asyncio.wait(set(running), timeout=self.stop_grace_seconds)
        for task in late:
            task.cancel()
        if late:
            await asyncio.gather(*late, return_exceptions=True)
        for task in late:
            job = running[task]
            try:
                await queue.release(self.ctx, job)
            except Exception:  # its lease still expires: another worker takes it then
                log.exception("releasing job %s failed", job.id)
            else:
                log.info("released job %s (%s) unfinished at stop", job.id, job.kind)

    async def _run(self, job: ClaimedJob) -> None:
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

    async def _retry(self, job: ClaimedJob, when: datetime, reason: str) -> None:
        if job.attempts >= MAX_ATTEMPTS:
            await queue.give_up(self.ctx, job, f"retries exhausted; last error: {reason}")
        else:
            await queue.retry_at(self.ctx, job, when, reason)
