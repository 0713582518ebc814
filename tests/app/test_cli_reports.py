"""`fediverse-stories report ...` as operators run it: a real process against a test database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from fediverse_stories.context import Context
from fediverse_stories.db.models import Actor
from fediverse_stories.services import reports
from fediverse_stories.settings import Settings
from tests.support.cli import assert_one_line_failure, run


async def a_report(env: dict[str, str], words: str) -> None:
    """A Flag from mastodon.test naming the admin account, as the inbox records one."""
    ctx = Context.build(Settings.from_environ(env, env_file=None))
    try:
        async with ctx.sessions.begin() as session:
            reporter = Actor(
                uri="https://mastodon.test/actor",
                type="Application",
                username="mastodon.test",
                domain="mastodon.test",
                created_at=datetime.now(UTC),
            )
            session.add(reporter)
        await reports.record(
            ctx, "https://mastodon.test/report-1", reporter, ["http://a.test/users/admin"], words
        )
    finally:
        await ctx.close()


async def test_list_prints_open_reports_and_resolve_closes_one_once(
    operator_env: dict[str, str],
) -> None:
    await a_report(operator_env, "Spam\tand\nmore spam")
    listed = await asyncio.to_thread(run, operator_env, "report", "list")
    assert listed.returncode == 0, listed.stderr
    (line,) = listed.stdout.splitlines()
    report_id, received, reporter, named, words = line.split("\t")
    assert received.endswith("Z")
    assert (reporter, named, words) == (
        "@mastodon.test@mastodon.test",
        "http://a.test/users/admin",
        "Spam and more spam",  # one line, whatever the reporter typed
    )

    resolved = await asyncio.to_thread(run, operator_env, "report", "resolve", report_id)
    assert (resolved.returncode, resolved.stdout) == (0, f"Resolved report {report_id}\n")
    assert (await asyncio.to_thread(run, operator_env, "report", "list")).stdout == ""
    again = await asyncio.to_thread(run, operator_env, "report", "resolve", report_id)
    assert_one_line_failure(again, "resolved by the command line already")
    for wrong in ("999", "²", "x"):
        result = await asyncio.to_thread(run, operator_env, "report", "resolve", wrong)
        assert_one_line_failure(result)
