"""Delivering one outbound activity: one job per distinct inbox, retries, give-ups, gone actors,
domain health and blocks, and a slow peer that delays nobody.

The peers are fake remote instances (tests/support/peers.py) on the routed transport; each one
verifies every signature and Digest with the key it fetched from our actor document.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select

from fediverse_stories.context import utc_now
from fediverse_stories.db.models import (
    Activity,
    DomainPolicy,
    Follow,
    Job,
    JobState,
    Role,
)
from fediverse_stories.services import domains, publishing
from fediverse_stories.services.accounts import create_account
from fediverse_stories.services.stories import StoryDraft
from fediverse_stories.worker import Worker
from tests.support.instances import Instance, InstanceFactory
from tests.support.peers import Peers, Sink, add_remote_followers


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def start(instances: InstanceFactory, clock: Clock | None = None) -> Instance:
    a = await instances.start("http://a.test", clock=clock or utc_now)
    async with a.ctx.sessions.begin() as session:
        await create_account(session, a.ctx, "amina", "a-good-password", role=Role.AUTHOR)
    return a


async def publish(a: Instance) -> str:
    """Publish a story by amina; the id of its Create activity."""
    story = await publishing.publish(
        a.ctx, "amina", StoryDraft(title="Listening first", body_markdown="We *listened*.")
    )
    async with a.ctx.sessions() as session:
        found = (
            await session.execute(
                select(Activity.uri).where(
                    Activity.type == "Create", Activity.object_uri == story.uri
                )
            )
        ).scalar_one()
    assert found is not None
    return found


async def deliver_jobs(a: Instance) -> list[Job]:
    async with a.ctx.sessions() as session:
        query = select(Job).where(Job.kind == "deliver").order_by(Job.id)
        return list((await session.execute(query)).scalars())


async def only_job(a: Instance) -> Job:
    jobs = await deliver_jobs(a)
    assert len(jobs) == 1, [j.payload for j in jobs]
    return jobs[0]


async def domain_health(a: Instance, domain: str) -> domains.DomainHealth:
    async with a.ctx.sessions() as session:
        rows = {row.domain: row for row in await domains.health(session)}
    return rows[domain]


async def one_follower(a: Instance, peers: Peers, netloc: str, *, shared: bool = True) -> Sink:
    sink = peers.add(netloc)
    await add_remote_followers(a.ctx, "amina", [(netloc, "reader", shared)])
    return sink


async def test_a_story_for_1000_followers_on_100_instances_makes_100_deliveries(
    instances: InstanceFactory,
) -> None:
    a = await start(instances)
    peers = Peers(instances, utc_now)
    sinks = [peers.add(f"peer{n}.test") for n in range(100)]
    await add_remote_followers(
        a.ctx,
        "amina",
        [(sink.netloc, f"u{k}", True) for sink in sinks for k in range(10)],
    )

    create_id = await publish(a)
    jobs = await deliver_jobs(a)
    assert len(jobs) == 100  # one per shared inbox, not one per follower
    assert sorted(str(job.payload["inbox"]) for job in jobs) == sorted(
        sink.shared_inbox for sink in sinks
    )
    assert all(job.payload["follower"] is None for job in jobs)  # shared: never "gone"

    assert await a.run_worker() == 100
    for sink in sinks:
        assert sink.rejected == [], sink.netloc
        assert sink.delivered_ids() == [create_id], sink.netloc
        assert [r.path for r in sink.received] == ["/inbox"]
        assert sink.received[0].key_id.startswith("http://a.test/users/amina")
    assert {job.state for job in await deliver_jobs(a)} == {JobState.DONE}


async def test_the_sinks_refuse_what_they_cannot_verify(instances: InstanceFactory) -> None:
    """The peers are no rubber stamp: unsigned or tampered requests are refused and recorded."""
    a = await start(instances)
    peers = Peers(instances, utc_now)
    sink = await one_follower(a, peers, "strict.test")
    unsigned = await instances.http.post(sink.shared_inbox, content=b"{}")
    assert unsigned.status_code == 401

    tampered: list[bytes] = []

    async def tamper(request: httpx.Request) -> None:
        tampered.append(request.content)
        request.stream = httpx.ByteStream(request.content.replace(b"listened", b"LISTENED"))

    instances.http.event_hooks["request"].append(tamper)
    try:
        await publish(a)
        assert await a.run_worker() == 1
    finally:
        instances.http.event_hooks["request"].remove(tamper)
    assert tampered and sink.received == []
    assert len(sink.rejected) == 2
    assert "DigestMismatch" in sink.rejected[1]
    job = await only_job(a)
    assert job.state == JobState.QUEUED and "401" in (job.last_error or "")


async def test_503_then_202_is_delivered_once_on_retry_and_health_recovers(
    instances: InstanceFactory,
) -> None:
    clock = Clock()
    a = await start(instances, clock)
    peers = Peers(instances, clock)
    sink = await one_follower(a, peers, "flaky.test")
    sink.answer(503, 202)

    create_id = await publish(a)
    assert await a.run_worker() == 1
    job = await only_job(a)
    assert job.state == JobState.QUEUED
    assert job.last_error is not None and "503" in job.last_error
    assert [r.status for r in sink.received] == [503]
    assert sink.delivered == []
    health = await domain_health(a, "flaky.test")
    assert health.last_success_at is None
    assert health.failures_since == 1 and health.failure_days == 1
    assert health.queued == 1

    assert await a.run_worker() == 0  # not due yet
    clock.now += timedelta(minutes=1)  # the first retry waits 15-25 s
    assert await a.run_worker() == 1

    assert sink.rejected == []
    assert sink.delivered_ids() == [create_id]
    assert [r.status for r in sink.received] == [503, 202]
    job = await only_job(a)
    assert job.state == JobState.DONE and job.attempts == 2
    health = await domain_health(a, "flaky.test")
    assert health.last_success_at == clock.now
    assert health.failures_since == 0 and health.failure_days == 0
    assert not health.unavailable and health.queued == 0


async def test_429_with_retry_after_is_not_retried_early(instances: InstanceFactory) -> None:
    clock = Clock()
    a = await start(instances, clock)
    peers = Peers(instances, clock)
    sink = await one_follower(a, peers, "busy.test")
    sink.answer((429, {"Retry-After": "3600"}))

    create_id = await publish(a)
    assert await a.run_worker() == 1
    job = await only_job(a)
    assert job.state == JobState.QUEUED and "429" in (job.last_error or "")
    assert job.run_at >= clock.now + timedelta(hours=1)

    clock.now += timedelta(minutes=30)
    assert await a.run_worker() == 0
    assert len(sink.received) == 1

    clock.now += timedelta(minutes=31)
    assert await a.run_worker() == 1
    assert sink.delivered_ids() == [create_id]
    assert sink.rejected == []
    assert (await only_job(a)).state == JobState.DONE


async def test_400_gives_up_with_its_reason(instances: InstanceFactory) -> None:
    clock = Clock()
    a = await start(instances, clock)
    peers = Peers(instances, clock)
    sink = await one_follower(a, peers, "picky.test")
    sink.answer(400)

    await publish(a)
    assert await a.run_worker() == 1
    job = await only_job(a)
    assert job.state == JobState.FAILED
    assert job.last_error is not None and "400" in job.last_error
    clock.now += timedelta(days=3)
    assert await a.run_worker() == 0
    assert [r.status for r in sink.received] == [400]


async def test_410_from_a_personal_inbox_removes_that_follower_but_not_from_a_shared_one(
    instances: InstanceFactory,
) -> None:
    a = await start(instances)
    peers = Peers(instances, utc_now)
    personal = peers.add("personal.test")
    shared = peers.add("shared.test")
    ids = await add_remote_followers(
        a.ctx,
        "amina",
        [
            ("personal.test", "gone", False),
            ("personal.test", "alive", False),
            ("shared.test", "one", True),
            ("shared.test", "two", True),
        ],
    )
    personal.answer(410, path="/users/gone/inbox")
    shared.answer(410)

    await publish(a)
    jobs = await deliver_jobs(a)
    assert [(job.payload["inbox"], job.payload["follower"]) for job in jobs] == [
        ("http://shared.test/inbox", None),  # shared inboxes first, never tied to a follower
        ("http://personal.test/users/alive/inbox", ids["http://personal.test/users/alive"]),
        ("http://personal.test/users/gone/inbox", ids["http://personal.test/users/gone"]),
    ]

    assert await a.run_worker() == 3
    assert personal.rejected == [] and shared.rejected == []
    assert sorted((r.path, r.status) for r in personal.received) == [
        ("/users/alive/inbox", 202),
        ("/users/gone/inbox", 410),
    ]
    assert [r.status for r in shared.received] == [410]
    async with a.ctx.sessions() as session:
        followers = set((await session.execute(select(Follow.follower_id))).scalars())
    assert ids["http://personal.test/users/gone"] not in followers
    assert {
        ids["http://personal.test/users/alive"],
        ids["http://shared.test/users/one"],
        ids["http://shared.test/users/two"],
    } <= followers


async def test_a_blocked_domain_receives_nothing_and_its_job_fails_with_a_reason(
    instances: InstanceFactory,
) -> None:
    a = await start(instances)
    peers = Peers(instances, utc_now)
    ok = peers.add("ok.test")
    blocked = peers.add("blocked.test")
    await add_remote_followers(
        a.ctx, "amina", [("ok.test", "reader", True), ("blocked.test", "reader", True)]
    )
    async with a.ctx.sessions.begin() as session:
        await domains.set_policy(session, "blocked.test", DomainPolicy.BLOCKED)

    create_id = await publish(a)
    assert await a.run_worker() == 2
    assert ok.delivered_ids() == [create_id]
    assert blocked.received == [] and not blocked.arrived.is_set()
    assert not any(r.url.host == "blocked.test" for r in instances.transport.requests)
    by_inbox = {job.payload["inbox"]: job for job in await deliver_jobs(a)}
    failed = by_inbox["http://blocked.test/inbox"]
    assert failed.state == JobState.FAILED
    assert failed.last_error is not None and "blocked" in failed.last_error
    assert by_inbox["http://ok.test/inbox"].state == JobState.DONE


async def _wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    async with asyncio.timeout(seconds):
        while not condition():
            await asyncio.sleep(0.01)


async def test_one_slow_peer_does_not_delay_the_others(instances: InstanceFactory) -> None:
    a = await start(instances)
    peers = Peers(instances, utc_now)
    slow = peers.add("slow.test")
    slow.gate = asyncio.Event()
    fast = [peers.add(f"fast{n}.test") for n in range(3)]
    await add_remote_followers(
        a.ctx, "amina", [(sink.netloc, "reader", True) for sink in [slow, *fast]]
    )

    create_id = await publish(a)
    batch = asyncio.create_task(Worker(a.ctx).run_once())
    try:
        await _wait_until(lambda: all(sink.delivered for sink in fast))
        # Every fast peer has its copy while the slow one is still holding its request.
        assert slow.arrived.is_set() and slow.received == []
        assert not batch.done()
    finally:
        slow.gate.set()
    assert await batch == 4
    assert slow.delivered_ids() == [create_id]
    assert all(sink.delivered_ids() == [create_id] for sink in fast)
    assert {job.state for job in await deliver_jobs(a)} == {JobState.DONE}


async def test_a_slow_peer_does_not_delay_deliveries_beyond_one_batch(
    instances: InstanceFactory,
) -> None:
    a = await start(instances)
    peers = Peers(instances, utc_now)
    slow = peers.add("a-slow.test")  # sorts first: claimed in the first batch
    slow.gate = asyncio.Event()
    fast = [peers.add(f"fast{n:02}.test") for n in range(20)]
    await add_remote_followers(
        a.ctx, "amina", [(sink.netloc, "reader", True) for sink in [slow, *fast]]
    )
    await publish(a)
    stop = asyncio.Event()
    worker = asyncio.create_task(Worker(a.ctx, concurrency=16).run_forever(stop))
    try:
        await _wait_until(lambda: all(sink.delivered for sink in fast), seconds=3)
    finally:
        slow.gate.set()
        stop.set()
        await worker
