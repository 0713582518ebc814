"""What to do after one delivery attempt: delivered, retry at a time, give up, or the actor is gone.

The retry schedule follows Sidekiq's, which Mastodon uses: after attempt n (1-based) wait
`(n - 1)**4 + 15 + jitter * 10 * n` seconds. Sixteen retries add up to about 49.6 hours (plus
at most 23 minutes of jitter), so a peer that is down for two days still gets everything; after
the sixteenth retry fails the job gives up with "retries exhausted". The clock (`now`) and the
jitter source are passed in, so the queue and its tests decide both.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

MAX_RETRIES = 16
# A Retry-After further away than the whole schedule is treated as "do not come back".
MAX_RETRY_AFTER = timedelta(days=2)
_RETRY_STATUSES = frozenset({401, 408, 429})

Jitter = Callable[[], float]


@dataclass(frozen=True)
class Delivered:
    """The inbox accepted the activity (2xx)."""


@dataclass(frozen=True)
class Retry:
    """Try again no earlier than `at`; `reason` is recorded with the job."""

    at: datetime
    reason: str


@dataclass(frozen=True)
class GiveUp:
    """Stop delivering this job; `reason` is recorded with it."""

    reason: str


@dataclass(frozen=True)
class Gone:
    """The inbox answered 410: for a personal inbox, its actor is gone."""

    reason: str = "410 Gone"


Outcome = Delivered | Retry | GiveUp | Gone


def backoff_delay(attempt: int, jitter: Jitter = random.random) -> float:
    """Seconds to wait after failed attempt `attempt` (1-based); `jitter()` returns [0, 1)."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    count = attempt - 1
    return float(count**4 + 15) + jitter() * 10 * (count + 1)


def schedule(jitter: Jitter = random.random) -> list[float]:
    """Every delay of the retry schedule, in order (MAX_RETRIES of them)."""
    return [backoff_delay(attempt, jitter) for attempt in range(1, MAX_RETRIES + 1)]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    # httpx.Headers is case-insensitive, a plain dict is not: look both ways.
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def retry_after(value: str | None, now: datetime) -> datetime | None:
    """The time a Retry-After header (delay in seconds or an HTTP-date) names, or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        # Capped so that an absurd value cannot overflow datetime; it is refused later anyway.
        return now + timedelta(seconds=min(int(value), 10 * 365 * 86400))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        # RFC 9110 dates are GMT; parsedate_to_datetime leaves "-0000" naive.
        when = when.replace(tzinfo=UTC)
    return when


def classify(
    status: int | None,
    headers: Mapping[str, str],
    *,
    now: datetime,
    attempt: int,
    jitter: Jitter = random.random,
) -> Outcome:
    """The outcome of delivery attempt `attempt` (1-based) that got `status` at `now`.

    `status` None means no response at all (timeout, refused connection, DNS failure): retried.
    5xx, 401 (a key not yet fetched, a clock skew), 408 and 429 are retried on the backoff
    schedule, never earlier than a Retry-After; 410 is Gone; any other status outside 2xx gives
    up with the status as the reason. A retry after the last scheduled one gives up with
    "retries exhausted".
    """
    if status is not None and 200 <= status < 300:
        return Delivered()
    if status == 410:
        return Gone()
    if status is not None and status not in _RETRY_STATUSES and not 500 <= status < 600:
        return GiveUp(f"HTTP {status}")
    reason = "no response" if status is None else f"HTTP {status}"
    if attempt > MAX_RETRIES:
        return GiveUp(f"retries exhausted (last: {reason})")
    at = now + timedelta(seconds=backoff_delay(attempt, jitter))
    not_before = retry_after(_header(headers, "retry-after"), now)
    if not_before is not None:
        if not_before - now > MAX_RETRY_AFTER:
            return GiveUp(f"{reason} with Retry-After beyond {MAX_RETRY_AFTER}")
        at = max(at, not_before)
    return Retry(at=at, reason=reason)
