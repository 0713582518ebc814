"""The durable job queue: jobs survive, are retried, give up with a reason, spare the worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from fediverse_stories import queue
from fediverse_stories.context import Context
from fediverse_stories.db.models import Job, JobState
from fediverse_stories.worker import GiveUp, RetryLater, Worker
from tests.support.instances import InstanceFactory


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def add_job(ctx: Context, kind: str, payload: dict[str, Any]) -> int:
    async with ctx.sessions.begin() as session:
        job = queue.enqueue(session, ctx, kind, payload)
        await session.flush()
        return job.id


async def job(ctx: Context, job_id: int) -> Job:
    async with ctx.sessions() as session:
        found = (await session.execute(select(Job).where(Job.id == job_id))).scalar_one()
        return found


async def test_a_job_runs_once_and_is_marked_done(instances: InstanceFactory) -> None:
    instance = await instances.start("http://a.test")
    seen: list[dict[str, Any]] = []

    async def record(ctx: Context, payload: dict[str, Any]) -> None:
        seen.append(payload)

    job_id = await add_job(instance.ctx, "record", {"n": 1})
    worker = Worker(instance.ctx, handlers={"record": record})
    assert await worker.run_until_idle() == 1
    assert await worker.run_until_idle() == 0
    assert seen == [{"n": 1, "_attempt": 1}]  # the worker adds the attempt number
    assert (await job(instance.ctx, job_id)).state == JobState.DONE


async def test_retry_later_waits_for_its_time_and_give_up_records_why(
    instances: InstanceFactory,
) -> None:
    clock = Clock()
    instance = await instances.start("http://a.test", clock=clock)
    calls: list[str] = []

    async def flaky(ctx: Context, payload: dict[str, Any]) -> None:
        calls.append("flaky")
        if len(calls) == 1:
            raise RetryLater(clock.now + timedelta(minutes=5), "peer answered 503")

    async def hopeless(ctx: Context, payload: dict[str, Any]) -> None:
        raise GiveUp("peer answered 400: bad request")

    flaky_id = await add_job(instance.ctx, "flaky", {})
    hopeless_id = await add_job(instance.ctx, "hopeless", {})
    worker = Worker(instance.ctx, handlers={"flaky": flaky, "hopeless": hopeless})
    await worker.run_until_idle()
    waiting = await job(instance.ctx, flaky_id)
    assert waiting.state == JobState.QUEUED and waiting.last_error == "peer answered 503"
    failed = await job(instance.ctx, hopeless_id)
    assert failed.state == JobState.FAILED and failed.last_error == "peer answered 400: bad request"
    clock.now += timedelta(minutes=4)
    assert await worker.run_until_idle() == 0  # not yet due
    clock.now += timedelta(minutes=2)
    assert await worker.run_until_idle() == 1
    assert (await job(instance.ctx, flaky_id)).state == JobState.DONE
    assert calls == ["flaky", "flaky"]


async def test_an_unexpected_error_is_recorded_and_retried_without_stopping_the_worker(
    instances: InstanceFactory,
) -> None:
    clock = Clock()
    instance = await instances.start("http://a.test", clock=clock)
    ran: list[str] = []

    async def broken(ctx: Context, payload: dict[str, Any]) -> None:
        raise ValueError("surprise")

    async def fine(ctx: Context, payload: dict[str, Any]) -> None:
        ran.append("fine")

    broken_id = await add_job(instance.ctx, "broken", {})
    await add_job(instance.ctx, "fine", {})
    await Worker(instance.ctx, handlers={"broken": broken, "fine": fine}).run_until_idle()
    assert ran == ["fine"]
    failed = await job(instance.ctx, broken_id)
    assert failed.state == JobState.QUEUED
    assert failed.last_error == "ValueError: surprise"
    assert failed.run_at > clock.now


async def test_a_job_whose_worker_died_is_claimed_again_after_its_lease(
    instances: InstanceFactory,
) -> None:
    clock = Clock()
    instance = await instances.start(
        "http://a.test", clock=clock, env={"FEDIVERSE_STORIES_JOB_LEASE_SECONDS": "30"}
    )
    job_id = await add_job(instance.ctx, "record", {})
    claimed = await queue.claim(instance.ctx, "worker-that-dies", 10)
    assert [j.id for j in claimed] == [job_id]
    assert await queue.claim(instance.ctx, "another-worker", 10) == []  # held under lease
    clock.now += timedelta(seconds=31)
    again = await queue.claim(instance.ctx, "another-worker", 10)
    assert [j.id for j in again] == [job_id]
    assert again[0].attempts == 2
    # The dead worker's late report no longer touches the job.
    await queue.finish(instance.ctx, claimed[0])
    assert (await job(instance.ctx, job_id)).state == JobState.CLAIMED


async def test_a_worker_runs_as_many_jobs_at_once_as_its_setting_allows(
    instances: InstanceFactory,
) -> None:
    instance = await instances.start("http://a.test", env={"FEDIVERSE_STORIES_WORKER_JOBS": "3"})
    running: set[int] = set()
    most = 0
    go_on = asyncio.Event()

    async def hold(ctx: Context, payload: dict[str, Any]) -> None:
        nonlocal most
        running.add(payload["n"])
        most = max(most, len(running))
        if len(running) == 3:
            go_on.set()  # the slots are full: let them all finish
        await go_on.wait()
        running.discard(payload["n"])

    ids = [await add_job(instance.ctx, "hold", {"n": n}) for n in range(7)]
    assert await Worker(instance.ctx, handlers={"hold": hold}).run_until_idle() == 7
    assert most == 3
    assert {(await job(instance.ctx, job_id)).state for job_id in ids} == {JobState.DONE}


async def test_unknown_job_kinds_are_given_up_with_a_reason(instances: InstanceFactory) -> None:
    instance = await instances.start("http://a.test")
    job_id = await add_job(instance.ctx, "no-such-kind", {})
    await Worker(instance.ctx, handlers={}).run_until_idle()
    failed = await job(instance.ctx, job_id)
    assert failed.state == JobState.FAILED
    assert failed.last_error == "no handler for job kind 'no-such-kind'"


async def test_a_claim_says_whether_it_took_every_due_job(instances: InstanceFactory) -> None:
    """A worker stops claiming once a claim saw every due job (a fan-out's tail ran one empty
    claim per finished job); a claim cut short by its limit or a host's limit says so."""
    instance = await instances.start("http://a.test")
    ctx = instance.ctx
    async with ctx.sessions.begin() as session:
        for n in range(3):
            queue.enqueue(session, ctx, "deliver", {"n": n}, host="busy.example")
        queue.enqueue(session, ctx, "deliver", {"n": 3}, host="other.example")

    by_limit = await queue.claim_due(ctx, "w", 2)
    assert len(by_limit.jobs) == 2 and not by_limit.saw_all_due
    by_host = await queue.claim_due(ctx, "w", 10, busy_hosts={"busy.example": 1}, per_host=1)
    assert [j.host for j in by_host.jobs] == ["other.example"] and not by_host.saw_all_due
    rest = await queue.claim_due(ctx, "w", 10)
    assert len(rest.jobs) == 1 and rest.saw_all_due
    nothing = await queue.claim_due(ctx, "w", 10)
    assert nothing.jobs == [] and nothing.saw_all_due
