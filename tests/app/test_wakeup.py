"""An idle worker wakes when jobs are queued, instead of at its next poll.

Each worker here polls once an hour (FEDIVERSE_STORIES_WORKER_IDLE_SLEEP_SECONDS=3600), and
was started before the job existed: only a wake-up can run the job within the test.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from sqlalchemy import func, select

from fediverse_stories import queue
from fediverse_stories.context import Context
from fediverse_stories.db.engine import make_engine
from fediverse_stories.db.models import InboxActivity, Job, JobState
from fediverse_stories.worker import Worker
from tests.support.instances import InstanceFactory
from tests.support.mastodon import ALICE, MastodonRemote

HOUR = {"FEDIVERSE_STORIES_WORKER_IDLE_SLEEP_SECONDS": "3600"}
# A failure guard, not a measurement: without a wake-up the job waits an hour.
GUARD_SECONDS = 20


@asynccontextmanager
async def idle_worker(ctx: Context) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
    """A worker, already idle when the block runs, that puts each `record` job's payload on
    the queue the block gets."""
    ran: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def record(_: Context, payload: dict[str, Any]) -> None:
        await ran.put(payload)

    stop = asyncio.Event()
    worker = Worker(ctx, handlers={"record": record})
    running = asyncio.create_task(worker.run_forever(stop))
    await asyncio.sleep(0.2)  # its first claim found nothing: it is idle now
    try:
        yield ran
    finally:
        stop.set()
        await running


async def test_a_job_queued_in_the_worker_s_process_runs_at_once(
    instances: InstanceFactory,
) -> None:
    instance = await instances.start("http://a.test", env=HOUR)
    ctx = instance.ctx
    async with idle_worker(ctx) as ran:
        async with ctx.sessions.begin() as session:
            queue.enqueue(session, ctx, "record", {"n": 1})
        got = await asyncio.wait_for(ran.get(), GUARD_SECONDS)
    assert got["n"] == 1


async def test_a_rolled_back_job_wakes_nothing_and_runs_nowhere(
    instances: InstanceFactory,
) -> None:
    instance = await instances.start("http://a.test", env=HOUR)
    ctx = instance.ctx
    async with idle_worker(ctx) as ran:
        with pytest.raises(RuntimeError):
            async with ctx.sessions.begin() as session:
                queue.enqueue(session, ctx, "record", {"n": 1})
                raise RuntimeError("the caller changed its mind")
        async with ctx.sessions.begin() as session:
            queue.enqueue(session, ctx, "record", {"n": 2})
        got = await asyncio.wait_for(ran.get(), GUARD_SECONDS)
    assert got["n"] == 2 and ran.empty()


async def test_a_job_queued_by_another_process_wakes_an_idle_worker(
    instances: InstanceFactory,
) -> None:
    instance = await instances.start("http://a.test", env=HOUR)
    async with idle_worker(instance.ctx) as ran:
        # Another connection with nothing shared with the worker's Context, as a CLI command
        # in its own process has: SQLite's data_version, PostgreSQL's NOTIFY tell the worker.
        other = Context.build(instance.settings)
        try:
            async with other.sessions.begin() as session:
                queue.enqueue(session, other, "record", {"n": 3})
        finally:
            await other.close()
        got = await asyncio.wait_for(ran.get(), GUARD_SECONDS)
    assert got["n"] == 3
    engine = make_engine(instance.database_url)
    try:
        async with engine.connect() as connection:
            states = (await connection.execute(select(Job.state))).scalars().all()
    finally:
        await engine.dispose()
    assert states == [JobState.DONE]


async def test_activities_arriving_at_the_inbox_wake_an_idle_worker(
    instances: InstanceFactory,
) -> None:
    """The first from a peer takes the inbox's general path (its key fetched), the second the
    happy path (key cached): both are processed without waiting for the poll."""
    instance = await instances.start("http://a.test", env=HOUR)
    alice = MastodonRemote.register(instances)
    stop = asyncio.Event()
    running = asyncio.create_task(Worker(instance.ctx).run_forever(stop))
    await asyncio.sleep(0.2)
    try:
        for n in (1, 2):
            response = await alice.post("http://a.test/inbox", public_note(n))
            assert response.status_code == 202, response.text
            await asyncio.wait_for(processed(instance.ctx, n), GUARD_SECONDS)
    finally:
        stop.set()
        await running


def public_note(n: int) -> dict[str, Any]:
    return {
        "@context": "https://www.w3.org/ns/activitystreams",
        "id": f"{ALICE}/statuses/{n}/activity",
        "type": "Create",
        "actor": ALICE,
        "to": ["https://www.w3.org/ns/activitystreams#Public"],
        "object": {
            "id": f"{ALICE}/statuses/{n}",
            "type": "Note",
            "attributedTo": ALICE,
            "content": f"<p>Hello {n}</p>",
            "to": ["https://www.w3.org/ns/activitystreams#Public"],
        },
    }


async def processed(ctx: Context, count: int) -> None:
    """Return once `count` inbox activities have been processed."""
    while True:
        async with ctx.sessions() as session:
            done = (
                await session.execute(
                    select(func.count(InboxActivity.id)).where(
                        InboxActivity.processed_at.is_not(None)
                    )
                )
            ).scalar_one()
        if done >= count:
            return
        await asyncio.sleep(0.05)
