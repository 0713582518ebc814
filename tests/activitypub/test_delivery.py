"""Classifying delivery responses and the retry schedule, with an injected clock and jitter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from activitypub.delivery import (
    MAX_RETRIES,
    Delivered,
    GiveUp,
    Gone,
    Retry,
    backoff_delay,
    classify,
    retry_after,
    schedule,
)

NOW = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def no_jitter() -> float:
    return 0.0


def max_jitter() -> float:
    return 0.999999


STATUSES = [
    (200, Delivered),
    (201, Delivered),
    (202, Delivered),
    (204, Delivered),
    (410, Gone),
    (500, Retry),
    (502, Retry),
    (503, Retry),
    (504, Retry),
    (401, Retry),
    (408, Retry),
    (429, Retry),
    (None, Retry),
    (400, GiveUp),
    (403, GiveUp),
    (404, GiveUp),
    (405, GiveUp),
    (413, GiveUp),
    (415, GiveUp),
    (422, GiveUp),
    (301, GiveUp),
    (302, GiveUp),
]


@pytest.mark.parametrize(("status", "kind"), STATUSES)
def test_statuses_classify(status: int | None, kind: type) -> None:
    outcome = classify(status, {}, now=NOW, attempt=1, jitter=no_jitter)
    assert isinstance(outcome, kind)
    if isinstance(outcome, GiveUp):
        assert str(status) in outcome.reason
    if isinstance(outcome, Retry):
        assert outcome.at == NOW + timedelta(seconds=15)


def test_a_retry_after_the_last_attempt_gives_up() -> None:
    last = classify(503, {}, now=NOW, attempt=MAX_RETRIES, jitter=no_jitter)
    assert isinstance(last, Retry)
    assert classify(503, {}, now=NOW, attempt=MAX_RETRIES + 1) == GiveUp(
        "retries exhausted (last: HTTP 503)"
    )
    assert classify(None, {}, now=NOW, attempt=MAX_RETRIES + 1) == GiveUp(
        "retries exhausted (last: no response)"
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3600", NOW + timedelta(hours=1)),
        (" 120 ", NOW + timedelta(minutes=2)),
        ("Sat, 01 Mar 2025 15:00:00 GMT", datetime(2025, 3, 1, 15, tzinfo=UTC)),
        ("Sat, 01 Mar 2025 15:00:00 -0000", datetime(2025, 3, 1, 15, tzinfo=UTC)),
        ("soon", None),
        ("-5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_both_forms(value: str | None, expected: datetime | None) -> None:
    assert retry_after(value, NOW) == expected


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "3600"},
        {"retry-after": "3600"},
        httpx.Headers({"Retry-After": "Sat, 01 Mar 2025 13:00:00 GMT"}),
    ],
)
def test_429_waits_at_least_the_retry_after(headers: dict[str, str]) -> None:
    outcome = classify(429, headers, now=NOW, attempt=1, jitter=no_jitter)
    assert outcome == Retry(at=NOW + timedelta(hours=1), reason="HTTP 429")


def test_retry_after_never_shortens_the_backoff() -> None:
    # At attempt 10 the backoff (9**4 + 15 s, about 1.8 h) is later than Retry-After: 60.
    outcome = classify(429, {"Retry-After": "60"}, now=NOW, attempt=10, jitter=no_jitter)
    assert outcome == Retry(at=NOW + timedelta(seconds=9**4 + 15), reason="HTTP 429")


def test_retry_after_in_the_past_falls_back_to_the_backoff() -> None:
    headers = {"Retry-After": "Sat, 01 Mar 2025 11:00:00 GMT"}
    outcome = classify(503, headers, now=NOW, attempt=1, jitter=no_jitter)
    assert outcome == Retry(at=NOW + timedelta(seconds=15), reason="HTTP 503")


@pytest.mark.parametrize("value", [str(30 * 86400), "9" * 40, "Fri, 31 Dec 9999 23:59:59 GMT"])
def test_a_retry_after_beyond_the_schedule_gives_up(value: str) -> None:
    outcome = classify(429, {"Retry-After": value}, now=NOW, attempt=1)
    assert isinstance(outcome, GiveUp)
    assert "Retry-After" in outcome.reason


def test_the_schedule_lasts_about_two_days() -> None:
    low, high = sum(schedule(no_jitter)), sum(schedule(max_jitter))
    assert len(schedule(no_jitter)) == MAX_RETRIES == 16
    assert 44 * 3600 <= low <= high <= 52 * 3600
    assert high - low < 1400


@pytest.mark.parametrize("jitter", [no_jitter, max_jitter, lambda: 0.5])
def test_the_schedule_grows_for_any_fixed_jitter(jitter: Callable[[], float]) -> None:
    delays = schedule(jitter)
    assert delays == sorted(delays)
    assert delays[0] >= 15
    assert delays[-1] < 15 * 3600


def test_jitter_spreads_but_stays_near_the_curve() -> None:
    values = iter([0.0, 0.999])
    first = backoff_delay(5, lambda: next(values))
    second = backoff_delay(5, lambda: next(values))
    assert first == 4**4 + 15
    assert first < second < first + 50


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0)
