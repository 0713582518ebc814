"""`fediverse-stories comment ...` as operators run it: a real process against a test database."""

from __future__ import annotations

import asyncio
import subprocess
from typing import Any

import pytest

from fediverse_stories.context import Context
from fediverse_stories.db.models import Comment, CommentState
from fediverse_stories.settings import Settings
from tests.app.test_moderation import comment_on_new_story
from tests.support.cli import assert_one_line_failure, run


async def comment(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run, env, "comment", *args)


async def held(env: dict[str, str], **options: Any) -> str:
    """A remote reply to a new local story, held (or in `state=`); its URL."""
    ctx = Context.build(Settings.from_environ(env, env_file=None))
    try:
        url, _ = await comment_on_new_story(ctx, **options)
    finally:
        await ctx.close()
    return url


async def state_of(env: dict[str, str], url: str) -> CommentState:
    from sqlalchemy import select

    ctx = Context.build(Settings.from_environ(env, env_file=None))
    try:
        async with ctx.sessions() as session:
            state = (
                await session.execute(select(Comment.state).where(Comment.uri == url))
            ).scalar_one()
    finally:
        await ctx.close()
    return state


async def test_pending_prints_one_plain_line_per_held_comment(operator_env: dict[str, str]) -> None:
    assert (await comment(operator_env, "pending")).stdout == ""
    long_text = "word " * 40
    first = await held(operator_env, html=f"<p>Hello <strong>there</strong>, {long_text}</p>")
    second = await held(operator_env, html="<p>Sneaky \x1b[31mred\x1b[0m<br>two lines</p>")
    await held(operator_env, state=CommentState.VISIBLE, html="<p>Already shown</p>")
    result = await comment(operator_env, "pending")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    url, story, handle, text = lines[0].split("\t")
    assert (url, story, handle) == (first, "http://a.test/stories/1", "@rita@remote.example")
    assert text.startswith("Hello there, word word")
    assert len(text) == 80 and text.endswith("…")
    assert "<" not in text
    url, story, handle, text = lines[1].split("\t")
    assert (url, story) == (second, "http://a.test/stories/2")
    assert "\x1b" not in text and "Sneaky" in text and "two lines" in text


async def test_approve_shows_a_held_comment_once(operator_env: dict[str, str]) -> None:
    url = await held(operator_env)
    result = await comment(operator_env, "approve", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Approved {url}"
    assert await state_of(operator_env, url) == CommentState.VISIBLE
    assert (await comment(operator_env, "pending")).stdout == ""
    assert_one_line_failure(await comment(operator_env, "approve", url), "visible, not pending")
    assert_one_line_failure(await comment(operator_env, "reject", url), "visible, not pending")
    assert await state_of(operator_env, url) == CommentState.VISIBLE


async def test_reject_refuses_a_held_comment(operator_env: dict[str, str]) -> None:
    url = await held(operator_env)
    result = await comment(operator_env, "reject", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Rejected {url}"
    assert await state_of(operator_env, url) == CommentState.REJECTED
    assert_one_line_failure(await comment(operator_env, "approve", url), "rejected, not pending")


async def test_remove_takes_a_shown_comment_down_once(operator_env: dict[str, str]) -> None:
    url = await held(operator_env, state=CommentState.VISIBLE)
    result = await comment(operator_env, "remove", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"Removed {url}"
    assert await state_of(operator_env, url) == CommentState.REMOVED
    assert_one_line_failure(await comment(operator_env, "remove", url), "already removed")


@pytest.mark.parametrize("action", ["approve", "reject", "remove"])
async def test_an_unknown_comment_is_one_line(operator_env: dict[str, str], action: str) -> None:
    missing = "http://a.test/comments/999"
    result = await comment(operator_env, action, missing)
    assert_one_line_failure(result, f"no comment at {missing}")


async def test_a_missing_url_is_a_one_line_usage_error(operator_env: dict[str, str]) -> None:
    result = await comment(operator_env, "approve")
    assert_one_line_failure(result, "COMMENT_URL")
