"""Finished work past keeping is deleted by a running worker; what is still needed stays."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import select

from fediverse_stories import retention
from fediverse_stories.context import Context
from fediverse_stories.db.models import InboxActivity, Job, JobState
from fediverse_stories.worker import Worker
from tests.app.test_queue import Clock, add_job
from tests.support.instances import InstanceFactory


async def add_activity(ctx: Context, name: str, processed_days_ago: int | None) -> int:
    now = ctx.clock()
    async with ctx.sessions.begin() as session:
        row = InboxActivity(
            uri=f"https://b.test/activities/{name}",
            type="Like",
            actor_uri="https://b.test/users/bo",
            signer_key_id="https://b.test/users/bo#main-key",
            raw="{}",
            received_at=now - timedelta(days=30),
            processed_at=(
                now - timedelta(days=processed_days_ago) if processed_days_ago is not None else None
            ),
            outcome="liked" if processed_days_ago is not None else None,
        )
        session.add(row)
        await session.flush()
        return row.id


async def ids_of(ctx: Context, model: type[Job] | type[InboxActivity]) -> set[int]:
    async with ctx.sessions() as session:
        return set((await session.execute(select(model.id))).scalars())


async def test_done_jobs_and_processed_activities_go_after_the_kept_days(
    instances: InstanceFactory,
) -> None:
    clock = Clock()
    instance = await instances.start("http://a.test", clock=clock)
    ctx = instance.ctx
    jobs = {name: await add_job(ctx, "record", {"name": name}) for name in ("old", "new", "bad")}
    queued = await add_job(ctx, "record", {"name": "queued"})
    async with ctx.sessions.begin() as session:
        for name, state, days in (
            ("old", JobState.DONE, 8),
            ("new", JobState.DONE, 6),
            ("bad", JobState.FAILED, 30),
        ):
            row = await session.get(Job, jobs[name])
            assert row is not None
            row.state, row.finished_at = state, clock.now - timedelta(days=days)
    activities = {
        "old": await add_activity(ctx, "old", 8),
        "new": await add_activity(ctx, "new", 6),
        "waiting": await add_activity(ctx, "waiting", None),  # not processed yet: never purged
    }

    assert await retention.purge(ctx) == {"jobs": 1, "inbox activities": 1}  # 7 days kept
    assert await ids_of(ctx, Job) >= {jobs["new"], jobs["bad"], queued}
    assert jobs["old"] not in await ids_of(ctx, Job)
    assert await ids_of(ctx, InboxActivity) == {activities["new"], activities["waiting"]}

    # A running worker purges on its own, at start.
    clock.now += timedelta(days=2)  # "new" is now 8 days old
    stop = asyncio.Event()
    running = asyncio.create_task(Worker(ctx, handlers={}).run_forever(stop))
    try:
        for _ in range(100):
            if activities["new"] not in await ids_of(ctx, InboxActivity):
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await running
    assert await ids_of(ctx, InboxActivity) == {activities["waiting"]}
    remaining = await ids_of(ctx, Job)
    assert jobs["new"] not in remaining and jobs["bad"] in remaining
