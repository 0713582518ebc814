"""The inbox's one-step write path (fediverse_stories/web/inbox_intake.py) stores what the worker
expects, waits for another writer instead of failing, and never stores twice.

eve@evil.test is known to a.test (her key cached), so her activities take the happy path: one
read and two inserts, run inline on the event loop on SQLite when the database is free.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3

import pytest
from sqlalchemy import func, select

from fediverse_stories.db.models import DomainPolicy, InboxActivity, Interaction, Job, JobState
from fediverse_stories.services import domains
from fediverse_stories.web import inbox_intake
from tests.adversarial.conftest import SHARED_INBOX, Target
from tests.support.databases import backend_name


async def test_a_stored_like_is_what_the_worker_processes(target: Target) -> None:
    like = target.evil.activity("Like", target.story.uri)
    response = await target.evil.post(target.client, SHARED_INBOX, like)
    assert response.status_code == 202, response.text

    async with target.a.ctx.sessions() as session:
        row = (
            await session.execute(select(InboxActivity).where(InboxActivity.uri == like["id"]))
        ).scalar_one()
        jobs = (await session.execute(select(Job).where(Job.kind == "inbox"))).scalars().all()
    assert (row.type, row.actor_uri) == ("Like", like["actor"])
    assert row.signer_key_id == target.evil.key_id()
    assert json.loads(row.raw) == like
    assert row.received_at.tzinfo is not None and row.processed_at is None
    job = next(job for job in jobs if job.payload == {"id": row.id})
    assert (job.state, job.attempts, job.run_at) == (JobState.QUEUED, 0, row.received_at)

    await target.settle()
    async with target.a.ctx.sessions() as session:
        likes = (
            await session.execute(
                select(func.count())
                .select_from(Interaction)
                .where(Interaction.object_uri == target.story.uri, Interaction.type == "Like")
            )
        ).scalar_one()
    assert likes == 1


async def test_a_replayed_activity_is_stored_once(target: Target) -> None:
    like = target.evil.activity("Like", target.story.uri)
    answers = await asyncio.gather(
        *(target.evil.post(target.client, SHARED_INBOX, like) for _ in range(5))
    )
    assert [r.status_code for r in answers] == [202] * 5
    async with target.a.ctx.sessions() as session:
        stored = (
            await session.execute(
                select(func.count())
                .select_from(InboxActivity)
                .where(InboxActivity.uri == like["id"])
            )
        ).scalar_one()
    assert stored == 1


@pytest.mark.skipif(
    backend_name() != "sqlite", reason="SQLite's single write lock is what this test holds"
)
async def test_an_activity_waits_for_another_writer_without_blocking_the_instance(
    target: Target,
) -> None:
    path = target.a.database_url.split("///", 1)[1]
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        like = target.evil.activity("Like", target.story.uri)
        posting = asyncio.create_task(target.evil.post(target.client, SHARED_INBOX, like))
        await asyncio.sleep(0.5)
        assert not posting.done()  # waiting for the lock, not refused
        assert (await target.client.get("/healthz")).status_code == 200  # the loop is free
        other.execute("COMMIT")
        response = await asyncio.wait_for(posting, 30)
    finally:
        other.close()
    assert response.status_code == 202, response.text
    async with target.a.ctx.sessions() as session:
        stored = (
            await session.execute(select(InboxActivity.id).where(InboxActivity.uri == like["id"]))
        ).scalar_one_or_none()
    assert stored is not None


POLICY_CASES = [
    # (mode, {entry: policy}, the inbox's answer: None for 202, else the 403's reason)
    ("open", {}, None),
    ("open", {"evil.test": DomainPolicy.BLOCKED}, "domain evil.test is blocked"),
    ("open", {"test": DomainPolicy.BLOCKED}, "domain test is blocked"),
    # Both the host and its parent blocked: the most specific entry is named.
    (
        "open",
        {"test": DomainPolicy.BLOCKED, "evil.test": DomainPolicy.BLOCKED},
        "domain evil.test is blocked",
    ),
    ("open", {"evil.test": DomainPolicy.ALLOWED}, None),
    ("allowlist", {}, "domain evil.test is not on the allowlist"),
    ("allowlist", {"evil.test": DomainPolicy.ALLOWED}, None),
    ("allowlist", {"test": DomainPolicy.ALLOWED}, None),
    ("allowlist", {"other.test": DomainPolicy.ALLOWED}, "domain evil.test is not on the allowlist"),
    # A block wins over an allow, whichever of the two is more specific.
    (
        "allowlist",
        {"test": DomainPolicy.ALLOWED, "evil.test": DomainPolicy.BLOCKED},
        "domain evil.test is blocked",
    ),
    (
        "allowlist",
        {"test": DomainPolicy.BLOCKED, "evil.test": DomainPolicy.ALLOWED},
        "domain test is blocked",
    ),
    ("allowlist", {"evil.test": DomainPolicy.NONE}, "domain evil.test is not on the allowlist"),
]


@pytest.mark.parametrize(("mode", "entries", "reason"), POLICY_CASES)
async def test_the_inbox_reads_the_domain_policy_as_the_rest_of_the_app_does(
    target: Target, mode: str, entries: dict[str, DomainPolicy], reason: str | None
) -> None:
    # eve's key is cached, so her POST takes the one-read path (inbox_intake.read), whose
    # verdict must be word for word the one domains.refusal gives everywhere else.
    async with target.a.ctx.sessions.begin() as session:
        await domains.set_mode(session, mode)
        for entry, policy in entries.items():
            await domains.set_policy(session, entry, policy)
    assert await target.a.ctx.in_one_hop(lambda s: domains.refusal(s, "evil.test")) == reason
    like = target.evil.activity("Like", target.story.uri)
    response = await target.evil.post(target.client, SHARED_INBOX, like)
    if reason is None:
        assert response.status_code == 202, response.text
    else:
        await target.refused(response, 403, reason)


async def test_concurrent_new_activities_are_each_stored_once_with_their_job(
    target: Target,
) -> None:
    # Concurrent requests' new activities are stored in one transaction (the inbox's group
    # commit): every one is there with its job, a replay inside the same batch is not.
    likes = [target.evil.activity("Like", target.story.uri) for _ in range(12)]
    answers = await asyncio.gather(
        *(target.evil.post(target.client, SHARED_INBOX, like) for like in likes + likes[:4])
    )
    assert [r.status_code for r in answers] == [202] * 16
    async with target.a.ctx.sessions() as session:
        rows = (
            await session.execute(
                select(InboxActivity.id, InboxActivity.uri).where(
                    InboxActivity.uri.in_([like["id"] for like in likes])
                )
            )
        ).all()
        jobs = (await session.execute(select(Job.payload).where(Job.kind == "inbox"))).all()
    assert sorted(uri for _, uri in rows) == sorted(like["id"] for like in likes)
    row_ids = {row_id for row_id, _ in rows}
    queued_for = [payload["id"] for (payload,) in jobs if payload["id"] in row_ids]
    assert sorted(queued_for) == sorted(row_ids)  # each row has exactly one job


async def test_an_activity_stored_meanwhile_by_another_process_fails_alone(
    target: Target,
) -> None:
    # Another connection stores X between the batch's check and its insert: X's insert fails
    # (SQLite aborts that statement; PostgreSQL rolls back X's savepoint) and Y still goes in.
    first, second = (target.evil.activity("Like", target.story.uri) for _ in range(2))
    now = target.a.ctx.clock()
    batch = [
        (activity, target.evil.key_id(), json.dumps(activity).encode(), now)
        for activity in (first, second)
    ]
    async with target.a.ctx.engine.connect() as other:
        await other.begin()
        await other.run_sync(lambda c: inbox_intake.store(c, *batch[0]))
        storing = asyncio.create_task(
            target.a.ctx.on_connection(lambda c: inbox_intake.store_new(c, batch))
        )
        await asyncio.sleep(0.5)
        assert not storing.done()  # waiting on the other connection's row (or write lock)
        await other.commit()
    assert await asyncio.wait_for(storing, 30) == [False, True]
    async with target.a.ctx.sessions() as session:
        stored = (
            await session.execute(
                select(InboxActivity.uri).where(InboxActivity.uri.in_([first["id"], second["id"]]))
            )
        ).all()
    assert sorted(uri for (uri,) in stored) == sorted([first["id"], second["id"]])
