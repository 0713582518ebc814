"""The durable job queue in the database: enqueue, claim under a lease, finish, retry, give up.

On PostgreSQL, any number of workers claim with `FOR UPDATE SKIP LOCKED`; on SQLite (the
in-process worker, or `worker` processes on one machine's file) each claim is an UPDATE guarded
by the claimable test, which makes it exclusive under SQLite's one write lock. A job whose
worker died is claimed again once its lease has expired, so delivery is at least once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Connection, Table, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from fediverse_stories.batching import GroupStep
from fediverse_stories.context import Context
from fediverse_stories.db.fast import FastStatement
from fediverse_stories.db.models import Job, JobState
from fediverse_stories.wakeup import mark_queued

MAX_ERROR_LENGTH = 2000


def enqueue(
    session: AsyncSession | Session,
    ctx: Context,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    host: str | None = None,
) -> Job:
    """Add a job in the caller's transaction: it exists exactly when the caller's change commits."""
    job = Job(**new_job(ctx.clock(), kind, payload, run_at=run_at, host=host))
    session.add(job)
    mark_queued(session, ctx.wakeup)
    return job


def new_job(
    now: datetime,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    host: str | None = None,
) -> dict[str, Any]:
    """The columns of a new queued job (for `enqueue`, and the inbox's Core insert)."""
    return {
        "kind": kind,
        "payload": payload,
        "state": JobState.QUEUED,
        "attempts": 0,
        "run_at": run_at or now,
        "created_at": now,
        "host": host,
    }


_JOBS = cast(Table, Job.__table__)

# A new job's row, from `new_job`'s columns, on the DBAPI cursor on SQLite (db/fast.py): the
# inbox adds one per request, a fan-out's publish a thousand at once.
INSERT_JOB = FastStatement(
    insert(_JOBS).values({name: bindparam(name) for name in new_job(datetime.now(UTC), "", {})})
)


def _claimable(now: Any) -> Any:
    return or_(
        (_JOBS.c.state == JobState.QUEUED) & (_JOBS.c.run_at <= now),
        (_JOBS.c.state == JobState.CLAIMED) & (_JOBS.c.lease_until < now),
    )


@dataclass(frozen=True)
class Claim:
    """What one claim got, and whether it saw every due job (none left for the next claim)."""

    jobs: list[ClaimedJob]
    saw_all_due: bool


@dataclass(frozen=True)
class ClaimedJob:
    """A job this worker holds under a lease: what running and closing it needs."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    host: str | None
    claimed_by: str


_CLAIMED_COLUMNS = (
    _JOBS.c.id,
    _JOBS.c.kind,
    _JOBS.c.payload,
    _JOBS.c.attempts,
    _JOBS.c.host,
    _JOBS.c.claimed_by,
)
# Built once, and run on the DBAPI cursor on SQLite (db/fast.py): a fan-out claims hundreds
# of times, and building the statements, or Core's execution around them, cost more than the SQL.
_DUE = (
    select(_JOBS.c.id, _JOBS.c.host)
    .where(_claimable(bindparam("now")))
    .order_by(_JOBS.c.run_at, _JOBS.c.id)
    .limit(bindparam("scan"))
)
_DUE_ON_SQLITE = FastStatement(_DUE)
# PostgreSQL: workers skip each other's candidates instead of waiting on them.
_DUE_SKIP_LOCKED = FastStatement(_DUE.with_for_update(skip_locked=True))
# The WHERE repeats the claimable test: on SQLite it is what makes the claim exclusive.
_CLAIM = FastStatement(
    update(_JOBS)
    .where(_JOBS.c.id.in_(bindparam("ids", expanding=True)), _claimable(bindparam("now")))
    .values(
        state=JobState.CLAIMED,
        lease_until=bindparam("lease"),
        claimed_by=bindparam("by"),
        attempts=_JOBS.c.attempts + 1,
    )
    .returning(*_CLAIMED_COLUMNS)
)


async def claim(
    ctx: Context,
    worker_id: str,
    limit: int,
    *,
    busy_hosts: Mapping[str, int] | None = None,
    per_host: int | None = None,
) -> list[ClaimedJob]:
    """Claim up to `limit` due jobs for this worker under a lease (`claim_due`'s jobs)."""
    found = await claim_due(ctx, worker_id, limit, busy_hosts=busy_hosts, per_host=per_host)
    return found.jobs


async def claim_due(
    ctx: Context,
    worker_id: str,
    limit: int,
    *,
    busy_hosts: Mapping[str, int] | None = None,
    per_host: int | None = None,
) -> Claim:
    """Claim up to `limit` due jobs for this worker under a lease.

    With `per_host`, no host gets more than that many jobs counting the `busy_hosts` this
    worker already runs: a slow peer's backlog stays queued instead of filling every slot.
    `saw_all_due` says the claim took every due job it saw and the scan was not cut short: a
    worker need not claim again until new jobs may have come.
    """
    now = ctx.clock()
    lease_until = now + timedelta(seconds=ctx.settings.job_lease_seconds)
    skip_locked = not ctx.settings.is_sqlite
    busy = busy_hosts or {}

    # One step on a Core connection, with no ORM session (its bookkeeping cost more than the SQL).
    def claim_on(connection: Connection) -> Claim:
        scan = limit if per_host is None else limit * 4
        due = _DUE_SKIP_LOCKED if skip_locked else _DUE_ON_SQLITE
        candidates = [(row[0], row[1]) for row in due.rows(connection, {"now": now, "scan": scan})]
        ids = _within_host_limits(candidates, limit, busy, per_host)
        saw_all = len(candidates) < scan and len(ids) == len(candidates)
        if not ids:
            return Claim([], saw_all)
        claimed = _CLAIM.rows(
            connection, {"ids": ids, "now": now, "lease": lease_until, "by": worker_id}
        )
        return Claim([ClaimedJob(*row) for row in claimed], saw_all)

    return await ctx.on_connection(claim_on, inline=True)


def _within_host_limits(
    candidates: list[tuple[int, str | None]],
    limit: int,
    busy_hosts: Mapping[str, int],
    per_host: int | None,
) -> list[int]:
    counts = dict(busy_hosts)
    chosen: list[int] = []
    for job_id, host in candidates:
        if per_host is not None and host is not None:
            if counts.get(host, 0) >= per_host:
                continue
            counts[host] = counts.get(host, 0) + 1
        chosen.append(job_id)
        if len(chosen) == limit:
            break
    return chosen


async def renew(ctx: Context, worker_id: str, job_ids: list[int]) -> int:
    """Extend the lease of jobs this worker still holds (a live worker never loses a slow job);
    the number renewed. A job whose lease already went to another worker is not touched."""
    if not job_ids:
        return 0
    lease_until = ctx.clock() + timedelta(seconds=ctx.settings.job_lease_seconds)
    async with ctx.sessions.begin() as session:
        result = await session.execute(
            update(Job)
            .where(
                Job.id.in_(job_ids),
                Job.claimed_by == worker_id,
                Job.state == JobState.CLAIMED,
            )
            .values(lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)


async def finish(ctx: Context, job: ClaimedJob) -> None:
    await _close(ctx, job, state=JobState.DONE, error=None)


async def give_up(ctx: Context, job: ClaimedJob, reason: str) -> None:
    await _close(ctx, job, state=JobState.FAILED, error=reason)


async def retry_at(ctx: Context, job: ClaimedJob, when: datetime, reason: str) -> None:
    async with ctx.sessions.begin() as session:
        await session.execute(
            update(Job)
            .where(Job.id == job.id, Job.claimed_by == job.claimed_by)
            .values(
                state=JobState.QUEUED,
                run_at=when,
                lease_until=None,
                claimed_by=None,
                last_error=reason[:MAX_ERROR_LENGTH],
            )
        )


async def release(ctx: Context, job: ClaimedJob) -> None:
    """Hand a claimed job back untouched (a worker stopping before it ran it)."""
    async with ctx.sessions.begin() as session:
        await session.execute(
            update(Job)
            # Only while still claimed: a job its handler already closed stays closed.
            .where(
                Job.id == job.id,
                Job.claimed_by == job.claimed_by,
                Job.state == JobState.CLAIMED,
            )
            .values(
                state=JobState.QUEUED, lease_until=None, claimed_by=None, attempts=Job.attempts - 1
            )
        )


async def _close(ctx: Context, job: ClaimedJob, *, state: JobState, error: str | None) -> None:
    await _closer.run(ctx, (job, state, error, ctx.clock()))


_CLOSE = FastStatement(
    update(_JOBS)
    .where(_JOBS.c.id == bindparam("job_id"), _JOBS.c.claimed_by == bindparam("by"))
    .values(
        state=bindparam("state"),
        lease_until=None,
        finished_at=bindparam("at"),
        last_error=bindparam("error"),
    )
)


def _close_all(
    connection: Connection, closing: list[tuple[ClaimedJob, JobState, str | None, datetime]]
) -> list[None]:
    """Close a batch of jobs: one UPDATE, executed once per job (only while the job is still
    this worker's: one whose lease went to another worker is not touched)."""
    _CLOSE.many(
        connection,
        [
            {
                "job_id": job.id,
                "by": job.claimed_by,
                "state": state,
                "at": at,
                "error": error[:MAX_ERROR_LENGTH] if error else None,
            }
            for job, state, error, at in closing
        ],
    )
    return [None] * len(closing)


# Jobs end in bursts during a fan-out: their closing UPDATEs share one transaction.
_closer = GroupStep(_close_all)


async def pending_count(ctx: Context) -> int:
    from sqlalchemy import func

    async with ctx.sessions() as session:
        query = (
            select(func.count())
            .select_from(Job)
            .where(Job.state.in_([JobState.QUEUED, JobState.CLAIMED]))
        )
        return int((await session.execute(query)).scalar_one())
