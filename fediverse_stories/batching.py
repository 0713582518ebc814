"""Group commit for hot database steps: many concurrent callers, one step per batch.

A fan-out runs hundreds of small jobs at once, each needing the same kind of short database
step (read what to send, record the answer, close the job). Run one by one, every step pays a
hand-off to the database thread and back, and on a busy machine those hand-offs, not the SQL,
were the cost (BENCHMARKS.md, section 2). A `GroupStep` queues the items submitted while its
previous batch runs and runs them together as the next batch, in one transaction on a Core
connection through `Context.on_connection` (inline on the event loop when SQLite is free, on
the connection kept for such steps: a hand-off to the thread, and an ORM session per batch,
cost more than the batch's SQL): under load batches grow by themselves, and a lone caller
still waits for just one step. Items of different instances
(several apps in one test process) never share a batch: each Context has its own lane.

    close_jobs = GroupStep(_close_jobs)     # _close_jobs(connection, items) -> a result per item
    await close_jobs.run(ctx, item)
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sqlalchemy import Connection

from fediverse_stories.context import Context

Item = TypeVar("Item")
Result = TypeVar("Result")

# A step gets every item of a batch and answers one result per item, in order; an exception in
# that list is raised to its item's caller alone.
BatchStep = Callable[[Connection, list[Item]], Sequence[Result | Exception]]

MAX_BATCH = 256


@dataclass
class _Lane(Generic[Item, Result]):
    """One Context's queue on one event loop."""

    loop: asyncio.AbstractEventLoop
    pending: list[tuple[Item, asyncio.Future[Result]]] = field(default_factory=list)
    draining: asyncio.Task[None] | None = None


class GroupStep(Generic[Item, Result]):
    """Runs `step` once for all the items submitted while the previous batch ran."""

    def __init__(self, step: BatchStep[Item, Result], max_batch: int = MAX_BATCH) -> None:
        self.step = step
        self.max_batch = max_batch
        self._lanes: dict[int, _Lane[Item, Result]] = {}

    async def run(self, ctx: Context, item: Item) -> Result:
        """`item`'s result, once the transaction of the batch it went into has committed."""
        lane = self._lane(ctx)
        future: asyncio.Future[Result] = lane.loop.create_future()
        lane.pending.append((item, future))
        if lane.draining is None or lane.draining.done():
            lane.draining = lane.loop.create_task(self._drain(ctx, lane))
        return await future

    def _lane(self, ctx: Context) -> _Lane[Item, Result]:
        loop = asyncio.get_running_loop()
        lane = self._lanes.get(id(ctx))
        if lane is None:
            # The lane goes with its Context, so a later Context at the same address starts anew.
            weakref.finalize(ctx, self._lanes.pop, id(ctx), None)
        if lane is None or lane.loop is not loop:  # a new loop: nothing pending can carry over
            lane = self._lanes[id(ctx)] = _Lane(loop)
        return lane

    async def _drain(self, ctx: Context, lane: _Lane[Item, Result]) -> None:
        while lane.pending:
            batch = lane.pending[: self.max_batch]
            del lane.pending[: self.max_batch]
            await self._run_batch(ctx, batch)

    async def _run_batch(
        self, ctx: Context, batch: list[tuple[Item, asyncio.Future[Result]]]
    ) -> None:
        items = [item for item, _ in batch]
        try:
            results = await ctx.on_connection(lambda c: self.step(c, items), inline=True)
        except Exception as error:  # the transaction failed: every caller of the batch hears it
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller was cancelled (a worker stopping): nothing to tell
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            else:
                future.set_result(result)
