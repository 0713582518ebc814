"""The `fediverse-stories` command as operators and scripts run it: a real process, no terminal."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fediverse_stories.cli import check_data_dir
from fediverse_stories.db.engine import make_engine
from fediverse_stories.db.models import Account, Actor
from fediverse_stories.settings import Settings
from tests.support.cli import assert_one_line_failure, run
from tests.support.databases import DatabaseTemplates


async def counts(database_url: str) -> tuple[int, int]:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            actors = (
                await connection.execute(select(func.count()).select_from(Actor))
            ).scalar_one()
            accounts = (
                await connection.execute(select(func.count()).select_from(Account))
            ).scalar_one()
    finally:
        await engine.dispose()
    return actors, accounts


async def test_init_creates_the_admin_once_and_is_idempotent(
    database_templates: DatabaseTemplates, tmp_path: Path
) -> None:
    url = await database_templates.empty_database()
    env = database_templates.settings_environ("http://a.test", url, tmp_path / "data")
    first = await asyncio.to_thread(run, env, "init")
    assert first.returncode == 0, first.stderr
    assert "Password: " in first.stdout
    second = await asyncio.to_thread(run, env, "init")
    assert second.returncode == 0, second.stderr
    assert "Password" not in second.stdout
    # Instance actor, organisation and admin: three actors, one account.
    assert await counts(url) == (3, 1)


async def test_user_add_creates_an_account_and_prints_its_generated_password(
    operator_env: dict[str, str],
) -> None:
    before = await counts(operator_env["FEDIVERSE_STORIES_DATABASE_URL"])
    result = await asyncio.to_thread(run, operator_env, "user", "add", "amina", "--role", "author")
    assert result.returncode == 0, result.stderr
    assert "http://a.test/users/amina" in result.stdout
    assert "Password: " in result.stdout
    after = await counts(operator_env["FEDIVERSE_STORIES_DATABASE_URL"])
    assert after == (before[0] + 1, before[1] + 1)


@pytest.mark.parametrize(
    ("args", "stdin", "fragment"),
    [
        (("user", "add", "admin"), "", "already taken"),
        (("user", "add", "bea", "--role", "king"), "", "unknown role 'king'"),
        (("user", "add", "Bad Name!"), "", "invalid name"),
        (("user", "add", "instance"), "", "reserved"),
        (("user", "add", "bea", "--password-stdin"), "short\n", "at least 10 characters"),
        (("user", "add", "bea", "--password-stdin"), "", "no password on stdin"),
        (
            ("user", "password", "nobody", "--password-stdin"),
            "a-long-password\n",
            "no account named 'nobody'",
        ),
        (("user", "add", "bea", "--display-name", "x" * 201), "", "display name"),
    ],
    ids=[
        "duplicate-name",
        "bad-role",
        "bad-name",
        "reserved-name",
        "short-password",
        "no-password",
        "unknown-user",
        "long-display-name",
    ],
)
async def test_bad_input_is_one_line_nonzero_and_writes_nothing(
    operator_env: dict[str, str], args: tuple[str, ...], stdin: str, fragment: str
) -> None:
    url = operator_env["FEDIVERSE_STORIES_DATABASE_URL"]
    before = await counts(url)
    result = await asyncio.to_thread(run, operator_env, *args, stdin=stdin)
    assert_one_line_failure(result, fragment)
    assert await counts(url) == before


async def test_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = {
        "FEDIVERSE_STORIES_DATA_DIR": str(tmp_path),
        # Port 9 on loopback: nothing listens there.
        "FEDIVERSE_STORIES_DATABASE_URL": "postgresql+asyncpg://nobody:secret@127.0.0.1:9/none",
    }
    result = await asyncio.to_thread(run, env, "init")
    assert_one_line_failure(result, "cannot use the database", "127.0.0.1:9")
    assert "secret" not in result.stderr


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"FEDIVERSE_STORIES_BASE_URL": "stories.example.org"}, "must be an origin"),
        (
            {"FEDIVERSE_STORIES_BASE_URL": "http://stories.example.org"},
            "needs an https:// base URL",
        ),
        ({"FEDIVERSE_STORIES_MAX_BODY_BYTES": "lots"}, "not a whole number"),
        ({"FEDIVERSE_STORIES_WORKER_JOBS": "0"}, "WORKER_JOBS=0 must be at least 1"),
        ({"FEDIVERSE_STORIES_DATABASE_URL": "mysql://x/y"}, "must start with sqlite+aiosqlite://"),
        ({"FEDIVERSE_STORIES_DATA_DIR": "/proc/fediverse-stories"}, "not writable"),
    ],
    ids=[
        "no-scheme",
        "http-in-production",
        "bad-number",
        "no-worker-jobs",
        "bad-database-url",
        "unwritable-data-dir",
    ],
)
async def test_bad_settings_are_one_line_each(
    tmp_path: Path, env: dict[str, str], fragment: str
) -> None:
    env = {"FEDIVERSE_STORIES_DATA_DIR": str(tmp_path), **env}
    result = await asyncio.to_thread(run, env, "init")
    assert_one_line_failure(result, fragment)


async def test_commands_refuse_an_uninitialised_database(
    database_templates: DatabaseTemplates, tmp_path: Path
) -> None:
    url = await database_templates.empty_database()
    env = database_templates.settings_environ("http://a.test", url, tmp_path)
    result = await asyncio.to_thread(run, env, "user", "add", "bea")
    assert_one_line_failure(result, "run `fediverse-stories init`")


async def test_usage_errors_are_one_line() -> None:
    result = await asyncio.to_thread(run, {}, "user", "frobnicate")
    assert_one_line_failure(result, "invalid choice")


async def story_count(database_url: str) -> int:
    from fediverse_stories.db.models import Story

    engine = make_engine(database_url)
    try:
        async with engine.connect() as connection:
            return int(
                (await connection.execute(select(func.count()).select_from(Story))).scalar_one()
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--author", "admin", "--title", "T", "missing.md"), "no such file"),
        (("--author", "nobody", "--title", "T", "story.md"), "no account named 'nobody'"),
        (("--author", "admin", "--title", " ", "story.md"), "needs a title"),
        (("--author", "admin", "--title", "T", "--tag", "bad tag", "story.md"), "invalid tag"),
        (
            ("--author", "admin", "--title", "T", "--visibility", "secret", "story.md"),
            "invalid choice",
        ),
        (("--author", "admin", "--title", "T", "empty.md"), "body is empty"),
    ],
    ids=[
        "missing-file",
        "unknown-author",
        "empty-title",
        "bad-tag",
        "bad-visibility",
        "empty-body",
    ],
)
async def test_story_publish_bad_input_is_one_line_and_writes_nothing(
    operator_env: dict[str, str], tmp_path: Path, args: tuple[str, ...], fragment: str
) -> None:
    (tmp_path / "story.md").write_text("# Hello\n\nA story.")
    (tmp_path / "empty.md").write_text("   \n")
    url = operator_env["FEDIVERSE_STORIES_DATABASE_URL"]
    paths = [str(tmp_path / a) if a.endswith(".md") else a for a in args]
    result = await asyncio.to_thread(run, operator_env, "story", "publish", *paths)
    assert_one_line_failure(result, fragment)
    assert await story_count(url) == 0


async def test_story_publish_prints_only_the_url(
    operator_env: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "story.md").write_text("# Hello\n\nA story.")
    result = await asyncio.to_thread(
        run,
        operator_env,
        "story",
        "publish",
        "--author",
        "admin",
        "--title",
        "Hello",
        str(tmp_path / "story.md"),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines() == ["http://a.test/stories/1"]


async def test_user_add_hide_followers_publishes_only_counts(operator_env: dict[str, str]) -> None:
    from fediverse_stories.db.models import Actor

    result = await asyncio.to_thread(run, operator_env, "user", "add", "quiet", "--hide-followers")
    assert result.returncode == 0, result.stderr
    engine = make_engine(operator_env["FEDIVERSE_STORIES_DATABASE_URL"])
    try:
        async with engine.connect() as connection:
            hidden = (
                await connection.execute(
                    select(Actor.hide_followers).where(Actor.username == "quiet")
                )
            ).scalar_one()
    finally:
        await engine.dispose()
    assert hidden is True


def test_processes_starting_together_all_find_the_data_dir_writable(tmp_path: Path) -> None:
    """Several `serve`/`worker` processes check one data dir at the same moment; none fails."""
    settings = Settings.from_environ(
        {"FEDIVERSE_STORIES_DATA_DIR": str(tmp_path / "data")}, env_file=None
    )

    def check_many_times() -> None:
        for _ in range(300):
            check_data_dir(settings)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for checking in [pool.submit(check_many_times) for _ in range(8)]:
            checking.result()
    assert list((tmp_path / "data").iterdir()) == []
