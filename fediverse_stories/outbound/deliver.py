"""The `deliver` job: POST one stored activity to one inbox, signed, and judge the answer."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete

from activitypub import delivery
from activitypub.errors import AddressRefused
from activitypub.vocab import ACTIVITY_JSON
from fediverse_stories.context import Context
from fediverse_stories.db.models import Activity, Actor, Follow
from fediverse_stories.services import domains
from fediverse_stories.services.signing import auth_for
from fediverse_stories.worker import HOST_CONCURRENCY, GiveUp, RetryLater, job_handler

PER_HOST_CONCURRENCY = HOST_CONCURRENCY  # also bounds run_once(), which claims without limits


@job_handler("deliver")
async def deliver(ctx: Context, payload: dict[str, Any]) -> None:
    inbox = str(payload["inbox"])
    host = urlsplit(inbox).netloc.lower()
    async with ctx.sessions() as session:
        row = await session.get(Activity, payload["activity"])
        if row is None:
            raise GiveUp("the activity no longer exists")
        actor = await session.get(Actor, row.actor_id)
        refused = await domains.is_refused(session, host)
        if refused is None and await domains.is_unavailable(session, host):
            refused = f"{host} failed on 7 distinct days and is marked unavailable"
    if refused:
        raise GiveUp(f"not delivered: {refused}")
    assert actor is not None
    body = row.raw.encode()
    status: int | None
    headers: httpx.Headers | dict[str, str]
    async with ctx.host_slot(host, PER_HOST_CONCURRENCY):
        try:
            async with asyncio.timeout(ctx.settings.fetch_timeout_seconds):
                response = await ctx.http.post(
                    inbox,
                    content=body,
                    headers={"Content-Type": ACTIVITY_JSON, "Accept": ACTIVITY_JSON},
                    auth=auth_for(ctx, actor),
                )
                await response.aclose()
            status, headers = response.status_code, response.headers
        except AddressRefused as error:
            raise GiveUp(f"address refused: {error}") from None
        except (httpx.HTTPError, TimeoutError) as error:
            status, headers, reason = None, {}, f"{type(error).__name__}: {error}"
        else:
            reason = f"HTTP {status}"
    now = ctx.clock()
    outcome = delivery.classify(status, headers, now=now, attempt=_attempt(payload))
    await _record_health(ctx, host, now, ok=isinstance(outcome, delivery.Delivered | delivery.Gone))
    if isinstance(outcome, delivery.Delivered):
        return
    if isinstance(outcome, delivery.Gone):
        follower = payload.get("follower")
        if follower is not None:  # a personal inbox: that actor is gone; never a shared inbox
            async with ctx.sessions.begin() as session:
                await session.execute(delete(Follow).where(Follow.follower_id == follower))
        return
    if isinstance(outcome, delivery.Retry):
        raise RetryLater(outcome.at, f"{reason}: {outcome.reason}")
    raise GiveUp(f"{reason}: {outcome.reason}")


def _attempt(payload: dict[str, Any]) -> int:
    # The worker counts attempts on the job row; the payload does not know it. The queue passes
    # it in as `_attempt` (see worker.py); default to the first attempt.
    return int(payload.get("_attempt", 1))


async def _record_health(ctx: Context, host: str, now: datetime, *, ok: bool) -> None:
    async with ctx.sessions.begin() as session:
        if ok:
            await domains.record_success(session, host, now)
        else:
            await domains.record_failure(session, host, now)
