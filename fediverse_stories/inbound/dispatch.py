"""The `inbox` job: one stored activity, dispatched by type to its handler; the outcome recorded."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from activitypub.errors import FetchError, FetchStatusError, FetchTimeout, ProtocolError
from fediverse_stories.context import Context
from fediverse_stories.db.models import InboxActivity
from fediverse_stories.services.errors import ServiceError
from fediverse_stories.services.remote_actors import actor_by_key_id
from fediverse_stories.worker import RetryLater, job_handler

# A handler returns a short outcome ("follow accepted", "ignored: not ours") for the record.
InboundHandler = Callable[[Context, dict[str, Any]], Awaitable[str]]
HANDLERS: dict[str, InboundHandler] = {}


def handles(*kinds: str) -> Callable[[InboundHandler], InboundHandler]:
    def register(handler: InboundHandler) -> InboundHandler:
        for kind in kinds:
            HANDLERS[kind] = handler
        return handler

    return register


@dataclass(frozen=True)
class Received:
    """What the inbox knew of the activity being handled: who signed it, and its exact bytes."""

    signer_uri: str | None
    raw: str


# Set for each activity the worker handles (handlers run one activity per task).
RECEIVED: ContextVar[Received] = ContextVar("received")


class Refused(Exception):
    """The activity was verified but cannot take effect; the reason is recorded."""


@job_handler("inbox")
async def process(ctx: Context, payload: dict[str, Any]) -> None:
    async with ctx.sessions() as session:
        row = await session.get(InboxActivity, payload["id"])
    if row is None or row.processed_at is not None:
        return
    activity = json.loads(row.raw)
    async with ctx.sessions() as session:
        signer = await actor_by_key_id(session, row.signer_key_id)
    RECEIVED.set(Received(signer.uri if signer else None, row.raw))
    handler = HANDLERS.get(row.type)
    try:
        outcome = await handler(ctx, activity) if handler else f"ignored: {row.type} not supported"
    except Refused as refusal:
        outcome = f"refused: {refusal}"
    except (FetchError, ProtocolError, ServiceError) as error:
        # An origin that is down may come back: retry those on the job's backoff. A document
        # that was refused (wrong id, type, address, size) will be refused again: record it.
        if payload.get("_attempt", 1) < 5 and _transient(error):
            raise RetryLater(
                ctx.clock() + _backoff(payload), f"{type(error).__name__}: {error}"
            ) from None
        outcome = f"refused: {type(error).__name__}: {error}"
    async with ctx.sessions.begin() as session:
        stored = await session.get(InboxActivity, payload["id"])
        if stored is not None:
            stored.processed_at = ctx.clock()
            stored.outcome = outcome[:2000]


def _transient(error: Exception) -> bool:
    if isinstance(error, FetchStatusError):
        return error.status >= 500 or error.status in (408, 429)
    if isinstance(error, FetchTimeout):
        return True
    # A plain FetchError is a connection failure; its subclasses are refusals.
    return type(error) is FetchError


def _backoff(payload: dict[str, Any]) -> Any:
    from datetime import timedelta

    return timedelta(seconds=30 * 4 ** int(payload.get("_attempt", 1)))
