"""`fediverse-stories domain ...` as operators run it: a real process against a test database."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import pytest

from fediverse_stories import queue
from fediverse_stories.context import Context
from fediverse_stories.db.models import DomainPolicy
from fediverse_stories.services import domains
from fediverse_stories.settings import Settings
from tests.support.cli import assert_one_line_failure, run
from tests.support.databases import DatabaseTemplates

T = TypeVar("T")
T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


async def domain(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, env, "domain", *args)


async def with_context(env: dict[str, str], work: Callable[[Context], Awaitable[T]]) -> T:
    ctx = Context.build(Settings.from_environ(env, env_file=None))
    try:
        return await work(ctx)
    finally:
        await ctx.close()


async def refused(env: dict[str, str], host: str) -> str | None:
    async def work(ctx: Context) -> str | None:
        async with ctx.sessions() as session:
            return await domains.is_refused(session, host)

    return await with_context(env, work)


async def test_block_list_and_unblock(operator_env: dict[str, str]) -> None:
    result = await domain(operator_env, "block", "Spam.Example.")
    assert result.returncode == 0, result.stderr
    assert "Blocked spam.example" in result.stdout
    assert await refused(operator_env, "a.spam.example") == "domain spam.example is blocked"

    again = await domain(operator_env, "block", "spam.example")
    assert again.returncode == 0, again.stderr
    assert "already blocked" in again.stdout

    await domain(operator_env, "allow", "bücher.example")
    listed = await domain(operator_env, "list")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines() == [
        "mode: open",
        "spam.example\tblocked",
        "xn--bcher-kva.example\tallowed",
    ]

    lifted = await domain(operator_env, "unblock", "spam.example")
    assert lifted.returncode == 0, lifted.stderr
    assert "Unblocked spam.example" in lifted.stdout
    assert await refused(operator_env, "a.spam.example") is None


async def test_unblock_of_a_domain_not_blocked_is_one_line_nonzero(
    operator_env: dict[str, str],
) -> None:
    assert_one_line_failure(
        await domain(operator_env, "unblock", "nice.example"), "nice.example is not blocked"
    )
    await domain(operator_env, "block", "example.org")
    assert_one_line_failure(
        await domain(operator_env, "unblock", "a.example.org"),
        "covered by the block of example.org",
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("block", "https://spam.example/"), "not a URL"),
        (("block", "*.spam.example"), "no wildcards"),
        (("allow", "alice@friends.example"), "user part"),
        (("block", "spam example"), "whitespace"),
        (("block", ""), "no domain given"),
        (("mode", "closed"), "invalid choice"),
        (("frobnicate",), "invalid choice"),
    ],
)
async def test_bad_input_is_one_line_nonzero(
    operator_env: dict[str, str], args: tuple[str, ...], fragment: str
) -> None:
    assert_one_line_failure(await domain(operator_env, *args), fragment)
    listed = await domain(operator_env, "list")
    assert listed.stdout.splitlines() == ["mode: open"]


async def test_allowlist_mode(operator_env: dict[str, str]) -> None:
    switched = await domain(operator_env, "mode", "allowlist")
    assert switched.returncode == 0, switched.stderr
    assert "mode: allowlist" in switched.stdout
    assert "all remote traffic is refused" in switched.stdout
    assert await refused(operator_env, "friends.example") is not None

    allowed = await domain(operator_env, "allow", "friends.example")
    assert allowed.returncode == 0, allowed.stderr
    assert await refused(operator_env, "social.friends.example") is None
    assert await refused(operator_env, "stranger.example") is not None
    assert (await domain(operator_env, "list")).stdout.splitlines() == [
        "mode: allowlist",
        "friends.example\tallowed",
    ]

    await domain(operator_env, "mode", "open")
    assert await refused(operator_env, "stranger.example") is None


async def test_health_shows_success_failures_and_queued_deliveries(
    operator_env: dict[str, str],
) -> None:
    async def work(ctx: Context) -> None:
        async with ctx.sessions.begin() as session:
            await domains.record_success(session, "up.example", T0)
            await domains.record_failure(session, "down.example", T0)
            await domains.record_failure(session, "down.example", T0.replace(hour=13))
            await domains.set_policy(session, "spam.example", DomainPolicy.BLOCKED)
            for inbox in ("https://down.example/inbox", "https://down.example/users/a/inbox"):
                queue.enqueue(session, ctx, "deliver", {"inbox": inbox})

    await with_context(operator_env, work)
    result = await domain(operator_env, "health")
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert lines[0] == [
        "domain",
        "last success",
        "failures since",
        "failure days",
        "unavailable",
        "queued",
    ]
    rows = {line[0]: line[1:] for line in lines[1:]}
    assert rows["up.example"] == ["2026-06-01T12:00:00+00:00", "0", "0", "no", "0"]
    assert rows["down.example"] == ["never", "2", "1", "no", "2"]
    assert rows["spam.example"] == ["never", "0", "0", "no", "0"]


async def test_domain_commands_refuse_an_uninitialised_database(
    database_templates: DatabaseTemplates, tmp_path: Path
) -> None:
    url = await database_templates.empty_database()
    env = database_templates.settings_environ("http://a.test", url, tmp_path)
    assert_one_line_failure(await domain(env, "list"), "run `fediverse-stories init`")
