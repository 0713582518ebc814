"""How long finished work stays in the database: a running worker deletes what is past keeping.

Jobs that finished well go after FEDIVERSE_STORIES_DONE_JOBS_KEPT_DAYS; failed jobs stay (they
record what never arrived, and are few). Processed inbox activities (raw bodies, the largest
rows) go after FEDIVERSE_STORIES_PROCESSED_ACTIVITIES_KEPT_DAYS: by then no replay of them can
pass the signature check (a signature is good for an hour), and a fresh copy forwarded again
is harmless, since every handler is idempotent by activity and object id.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from fediverse_stories.context import Context
from fediverse_stories.db.models import InboxActivity, Job, JobState

# Rows per transaction: no delete holds SQLite's write lock for long (a fan-out leaves thousands).
BATCH = 5_000


async def purge(ctx: Context) -> dict[str, int]:
    """Delete every row past keeping; how many of each kind."""
    now = ctx.clock()
    settings = ctx.settings
    jobs = await _delete_in_batches(
        ctx,
        Job,
        (Job.state == JobState.DONE)
        & (Job.finished_at < now - timedelta(days=settings.done_jobs_kept_days)),
    )
    activities = await _delete_in_batches(
        ctx,
        InboxActivity,
        InboxActivity.processed_at < now - timedelta(days=settings.processed_activities_kept_days),
    )
    return {"jobs": jobs, "inbox activities": activities}


async def _delete_in_batches(ctx: Context, model: Any, condition: Any) -> int:
    total = 0
    while True:
        async with ctx.sessions.begin() as session:
            batch = select(model.id).where(condition).limit(BATCH)
            result = await session.execute(
                delete(model)
                .where(model.id.in_(batch))
                .execution_options(synchronize_session=False)
            )
        deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < BATCH:
            return total
