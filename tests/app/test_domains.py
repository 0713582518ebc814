"""Federation policy and domain health against a real database: blocks cover subdomains and every
spelling, never lookalikes; allowlist mode; failures counted by distinct UTC days."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from fediverse_stories import queue
from fediverse_stories.db.models import Domain, DomainPolicy, Job, JobState
from fediverse_stories.services import domains
from fediverse_stories.services.errors import Invalid, NotFound
from tests.support.instances import Instance

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def block(instance: Instance, *names: str) -> None:
    async with instance.ctx.sessions.begin() as session:
        for name in names:
            await domains.set_policy(session, name, DomainPolicy.BLOCKED)


async def allow(instance: Instance, *names: str) -> None:
    async with instance.ctx.sessions.begin() as session:
        for name in names:
            await domains.set_policy(session, name, DomainPolicy.ALLOWED)


async def refused(instance: Instance, host: str) -> str | None:
    async with instance.ctx.sessions() as session:
        return await domains.is_refused(session, host)


async def set_mode(instance: Instance, mode: str) -> None:
    async with instance.ctx.sessions.begin() as session:
        await domains.set_mode(session, mode)


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("example.org", "example.org"),
        ("Example.ORG", "example.org"),
        ("example.org.", "example.org"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("BÜCHER.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("example.org:8443", "example.org:8443"),
        ("127.0.0.1:8123", "127.0.0.1:8123"),
        ("[::1]:8000", "[::1]:8000"),
    ],
)
def test_normalise_domain(given: str, expected: str) -> None:
    assert domains.normalise_domain(given) == expected


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("", "no domain given"),
        ("https://example.org/", "not a URL"),
        ("example.org/users", "not a URL"),
        ("example .org", "whitespace"),
        (" example.org", "whitespace"),
        ("example.org\n", "whitespace"),
        ("*.example.org", "no wildcards"),
        ("alice@example.org", "user part"),
        ("example..org", "empty label"),
        ("example.org..", "empty label"),
        ("example.org:99999", "port"),
        ("example.org?x", "not a host name"),
    ],
)
def test_normalise_domain_refuses_what_is_not_a_host(given: str, fragment: str) -> None:
    with pytest.raises(Invalid) as caught:
        domains.normalise_domain(given)
    message = str(caught.value)
    assert fragment in message
    assert "\n" not in message


def test_host_of_a_url_keeps_the_port_and_normalises() -> None:
    assert domains.host_of("https://Example.ORG:8443/inbox") == "example.org:8443"
    assert domains.host_of("https://bücher.example/users/a") == "xn--bcher-kva.example"
    assert domains.host_of("https://example.org:443/inbox") == "example.org"  # default port
    with pytest.raises(Invalid):
        domains.host_of("not a url")


# --- blocks ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host",
    [
        "example.org",
        "EXAMPLE.ORG",
        "example.org.",
        "a.example.org",
        "a.b.example.org",
        "A.B.Example.Org.",
        "example.org:8443",
        "a.example.org:8443",
    ],
)
async def test_a_block_covers_the_domain_its_subdomains_and_every_port(
    instance: Instance, host: str
) -> None:
    await block(instance, "example.org")
    reason = await refused(instance, host)
    assert reason == "domain example.org is blocked"


@pytest.mark.parametrize(
    "host",
    ["notexample.org", "example.org.evil.test", "example.com", "org", "xexample.org:8443"],
)
async def test_lookalikes_are_not_covered_by_a_block(instance: Instance, host: str) -> None:
    await block(instance, "example.org")
    assert await refused(instance, host) is None


@pytest.mark.parametrize(
    ("blocked", "host"),
    [
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "bücher.example"),
        ("xn--bcher-kva.example", "Sub.BÜCHER.example"),
        ("EXAMPLE.org.", "example.org"),
    ],
)
async def test_unicode_punycode_case_and_trailing_dot_spellings_match(
    instance: Instance, blocked: str, host: str
) -> None:
    await block(instance, blocked)
    assert await refused(instance, host) is not None


async def test_a_block_with_a_port_covers_only_that_port(instance: Instance) -> None:
    await block(instance, "example.org:8443")
    assert await refused(instance, "example.org:8443") == "domain example.org:8443 is blocked"
    assert await refused(instance, "a.example.org:8443") is not None
    assert await refused(instance, "example.org") is None
    assert await refused(instance, "example.org:9000") is None


async def test_an_ip_address_block_covers_only_that_address(instance: Instance) -> None:
    await block(instance, "2.3.4")  # a name, not an address: must not cover 1.2.3.4
    await block(instance, "10.0.0.1")
    assert await refused(instance, "1.2.3.4") is None
    assert await refused(instance, "10.0.0.1:8000") is not None


async def test_an_invalid_host_is_refused(instance: Instance) -> None:
    assert await refused(instance, "exa mple.org") is not None


async def test_unblock_lifts_the_block_and_refuses_what_is_not_blocked(
    instance: Instance,
) -> None:
    await block(instance, "example.org")
    async with instance.ctx.sessions.begin() as session:
        assert await domains.unblock(session, "EXAMPLE.org.") == "example.org"
    assert await refused(instance, "a.example.org") is None
    async with instance.ctx.sessions.begin() as session:
        with pytest.raises(NotFound, match=r"^example\.org is not blocked$"):
            await domains.unblock(session, "example.org")
    await block(instance, "example.org")
    async with instance.ctx.sessions.begin() as session:
        with pytest.raises(NotFound, match=r"covered by the block of example\.org$"):
            await domains.unblock(session, "a.example.org")
    async with instance.ctx.sessions.begin() as session:
        with pytest.raises(NotFound, match=r"^never\.example is not blocked$"):
            await domains.unblock(session, "never.example")


async def test_blocking_twice_is_idempotent_and_list_shows_policies(instance: Instance) -> None:
    async with instance.ctx.sessions.begin() as session:
        assert await domains.set_policy(session, "b.test", DomainPolicy.BLOCKED) == (
            DomainPolicy.NONE
        )
        assert await domains.set_policy(session, "B.test", DomainPolicy.BLOCKED) == (
            DomainPolicy.BLOCKED
        )
        await domains.set_policy(session, "a.test", DomainPolicy.ALLOWED)
        await domains.record_failure(session, "c.test", T0)  # health only: not listed
    async with instance.ctx.sessions() as session:
        assert await domains.list_policies(session) == [
            ("a.test", DomainPolicy.ALLOWED),
            ("b.test", DomainPolicy.BLOCKED),
        ]
        count = len((await session.execute(select(Domain))).scalars().all())
    assert count == 3


# --- modes -------------------------------------------------------------------------------------


async def test_the_mode_is_open_by_default_and_can_be_switched(instance: Instance) -> None:
    async with instance.ctx.sessions() as session:
        assert await domains.get_mode(session) == domains.FederationMode.OPEN
    await set_mode(instance, "allowlist")
    async with instance.ctx.sessions.begin() as session:
        assert await domains.get_mode(session) == domains.FederationMode.ALLOWLIST
        assert await domains.set_mode(session, "open") == domains.FederationMode.ALLOWLIST
        with pytest.raises(Invalid, match=r"unknown federation mode 'closed'"):
            await domains.set_mode(session, "closed")
    async with instance.ctx.sessions() as session:
        assert await domains.get_mode(session) == domains.FederationMode.OPEN


async def test_allowlist_mode_refuses_all_but_allowed_domains_and_their_subdomains(
    instance: Instance,
) -> None:
    await allow(instance, "friends.example", "bücher.example")
    assert await refused(instance, "stranger.example") is None  # open: allows do not restrict
    await set_mode(instance, "allowlist")
    assert await refused(instance, "stranger.example") == (
        "domain stranger.example is not on the allowlist"
    )
    assert await refused(instance, "friends.example") is None
    assert await refused(instance, "social.friends.example:8443") is None
    assert await refused(instance, "XN--BCHER-KVA.EXAMPLE.") is None
    assert await refused(instance, "notfriends.example") is not None
    assert await refused(instance, "friends.example.evil.test") is not None


async def test_a_block_wins_over_an_allow_in_allowlist_mode(instance: Instance) -> None:
    await allow(instance, "friends.example")
    await block(instance, "spam.friends.example")
    await set_mode(instance, "allowlist")
    assert await refused(instance, "spam.friends.example") == (
        "domain spam.friends.example is blocked"
    )
    assert await refused(instance, "x.spam.friends.example") is not None
    assert await refused(instance, "good.friends.example") is None


async def test_blocking_an_allowed_domain_replaces_the_allow(instance: Instance) -> None:
    await allow(instance, "friends.example")
    async with instance.ctx.sessions.begin() as session:
        previous = await domains.set_policy(session, "friends.example", DomainPolicy.BLOCKED)
    assert previous == DomainPolicy.ALLOWED
    assert await refused(instance, "friends.example") is not None


# --- health ------------------------------------------------------------------------------------


async def domain_row(instance: Instance, name: str) -> Domain | None:
    async with instance.ctx.sessions() as session:
        return await session.get(Domain, name)


async def fail(instance: Instance, host: str, now: datetime) -> None:
    async with instance.ctx.sessions.begin() as session:
        await domains.record_failure(session, host, now)


async def unavailable(instance: Instance, host: str) -> bool:
    async with instance.ctx.sessions() as session:
        return await domains.is_unavailable(session, host)


async def test_failures_on_seven_distinct_days_make_a_domain_unavailable(
    instance: Instance,
) -> None:
    for day in range(6):
        await fail(instance, "peer.example", T0 + timedelta(days=day))
        await fail(instance, "peer.example", T0 + timedelta(days=day, hours=3))
    assert not await unavailable(instance, "peer.example")
    row = await domain_row(instance, "peer.example")
    assert row is not None and (row.failure_days, row.failures_since) == (6, 12)
    await fail(instance, "Peer.Example.", T0 + timedelta(days=8))  # a gap still counts as a day
    assert await unavailable(instance, "peer.example")
    row = await domain_row(instance, "peer.example")
    assert row is not None
    assert (row.failure_days, row.failures_since, row.unavailable) == (7, 13, True)
    assert row.first_failure_at == T0
    assert row.last_failure_at == T0 + timedelta(days=8)


async def test_many_failures_on_one_day_count_as_one_day(instance: Instance) -> None:
    start = datetime(2026, 6, 1, 0, 0, 1, tzinfo=UTC)
    for n in range(10):
        await fail(instance, "peer.example", start + timedelta(hours=2 * n + 1))
    row = await domain_row(instance, "peer.example")
    assert row is not None
    assert (row.failure_days, row.failures_since, row.unavailable) == (1, 10, False)


async def test_days_are_utc_days(instance: Instance) -> None:
    # 23:30 and 00:30 UTC the next day are two days, whatever zone the clock reports in.
    from datetime import timezone

    plus_two = timezone(timedelta(hours=2))
    await fail(instance, "peer.example", datetime(2026, 6, 2, 1, 30, tzinfo=plus_two))
    await fail(instance, "peer.example", datetime(2026, 6, 2, 2, 30, tzinfo=plus_two))
    row = await domain_row(instance, "peer.example")
    assert row is not None and row.failure_days == 2


async def test_a_late_report_stamped_earlier_adds_no_day(instance: Instance) -> None:
    await fail(instance, "peer.example", T0 + timedelta(days=1))
    await fail(instance, "peer.example", T0)
    row = await domain_row(instance, "peer.example")
    assert row is not None
    assert (row.failure_days, row.failures_since) == (1, 2)
    assert row.last_failure_at == T0 + timedelta(days=1)


async def test_a_success_resets_the_failures(instance: Instance) -> None:
    for day in range(7):
        await fail(instance, "peer.example", T0 + timedelta(days=day))
    assert await unavailable(instance, "peer.example")
    async with instance.ctx.sessions.begin() as session:
        await domains.record_success(session, "peer.example", T0 + timedelta(days=7))
    assert not await unavailable(instance, "peer.example")
    row = await domain_row(instance, "peer.example")
    assert row is not None
    assert row.last_success_at == T0 + timedelta(days=7)
    assert (row.failures_since, row.failure_days, row.first_failure_at) == (0, 0, None)
    # A failure later the same day starts a fresh count of one day.
    await fail(instance, "peer.example", T0 + timedelta(days=7, hours=1))
    row = await domain_row(instance, "peer.example")
    assert row is not None and (row.failure_days, row.failures_since) == (1, 1)


async def test_a_verified_request_resets_the_failures_but_not_last_success(
    instance: Instance,
) -> None:
    for day in range(7):
        await fail(instance, "peer.example", T0 + timedelta(days=day))
    async with instance.ctx.sessions.begin() as session:
        await domains.record_verified_request(session, "PEER.example", T0 + timedelta(days=7))
        # From a domain we know nothing about: no row is written.
        await domains.record_verified_request(session, "quiet.example", T0)
    assert not await unavailable(instance, "peer.example")
    row = await domain_row(instance, "peer.example")
    assert row is not None
    assert (row.failures_since, row.failure_days, row.unavailable) == (0, 0, False)
    assert row.last_success_at is None
    assert await domain_row(instance, "quiet.example") is None


async def test_health_lists_domains_with_their_queued_deliveries(instance: Instance) -> None:
    ctx = instance.ctx
    async with ctx.sessions.begin() as session:
        for inbox in (
            "https://peer.example/inbox",
            "https://PEER.example/users/a/inbox",
            "https://other.example:8443/inbox",
            "not a url",
        ):
            queue.enqueue(session, ctx, "deliver", {"inbox": inbox})
        queue.enqueue(session, ctx, "deliver", {"no": "inbox"})
        queue.enqueue(session, ctx, "fetch", {"inbox": "https://peer.example/inbox"})
        done = queue.enqueue(session, ctx, "deliver", {"inbox": "https://peer.example/inbox"})
        claimed = queue.enqueue(session, ctx, "deliver", {"inbox": "https://peer.example/x"})
        await session.flush()
        done.state = JobState.DONE
        claimed.state = JobState.CLAIMED
        await domains.record_success(session, "peer.example", T0)
        await domains.record_failure(session, "down.example", T0)
        await domains.set_policy(session, "blocked.example", DomainPolicy.BLOCKED)
    async with ctx.sessions() as session:
        rows = {row.domain: row for row in await domains.health(session)}
        assert len((await session.execute(select(Job))).scalars().all()) == 8
    assert sorted(rows) == ["blocked.example", "down.example", "other.example:8443", "peer.example"]
    assert rows["peer.example"].queued == 3
    assert rows["peer.example"].last_success_at == T0
    assert rows["other.example:8443"].queued == 1
    assert rows["other.example:8443"].last_success_at is None
    assert (rows["down.example"].failures_since, rows["down.example"].queued) == (1, 0)
    assert rows["blocked.example"].policy == DomainPolicy.BLOCKED
