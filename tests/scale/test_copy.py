"""Issue 7, must show 3: `fediverse-stories copy-to` moves an SQLite instance to PostgreSQL.

Every story, comment, follower, key and queued job arrives; the target is migrated first, a
non-empty target is refused, and new rows after the copy do not collide with copied ids.
"""

from __future__ import annotations

import argparse
import asyncio
import os
from pathlib import Path

import pytest
from sqlalchemy import func, select

from fediverse_stories import queue
from fediverse_stories.cli_ops import COMMANDS, add_ops_commands
from fediverse_stories.context import Context
from fediverse_stories.db.migrate import is_current
from fediverse_stories.db.models import (
    Actor,
    Base,
    Comment,
    CommentState,
    Follow,
    Job,
    JobState,
    Role,
    Story,
)
from fediverse_stories.services.accounts import create_account, get_account
from fediverse_stories.services.errors import Conflict
from fediverse_stories.services.instance import initialise
from fediverse_stories.services.publishing import publish
from fediverse_stories.services.stories import StoryDraft
from fediverse_stories.settings import Settings
from tests.support.peers import add_remote_followers

pytestmark = pytest.mark.skipif(
    not os.environ.get("FEDIVERSE_STORIES_TEST_DATABASE_URL"),
    reason="copying to PostgreSQL needs a PostgreSQL server: set "
    "FEDIVERSE_STORIES_TEST_DATABASE_URL=postgresql://USER@HOST:PORT/DB",
)

BASE_URL = "http://stories.test"


def _environ(database_url: str, data_dir: Path) -> dict[str, str]:
    return {
        "FEDIVERSE_STORIES_BASE_URL": BASE_URL,
        "FEDIVERSE_STORIES_DATABASE_URL": database_url,
        "FEDIVERSE_STORIES_DATA_DIR": str(data_dir),
    }


async def _fill(ctx: Context) -> None:
    """An SQLite instance with stories, comments, followers, keys and queued deliveries."""
    await initialise(ctx)
    async with ctx.sessions.begin() as session:
        await create_account(session, ctx, "amina", "a long password", role=Role.AUTHOR)
    await add_remote_followers(
        ctx, "amina", [(f"peer{n}.test", f"f{i}", n % 2 == 0) for n in range(5) for i in range(4)]
    )
    first = await publish(ctx, "amina", StoryDraft("Wells", "We *dug* together.", tags=["water"]))
    await publish(ctx, "amina", StoryDraft("Schools", "Teachers first."))
    async with ctx.sessions.begin() as session:
        amina = (await get_account(session, "amina")).actor
        remote = (await session.execute(select(Actor).where(Actor.local.is_(False)))).scalars()
        replier = next(iter(remote))
        parent = Comment(
            uri=f"{replier.uri}/notes/1",
            local=False,
            story_id=first.id,
            in_reply_to=str(first.uri),
            author_id=replier.id,
            content_html="<p>How deep?</p>",
            state=CommentState.VISIBLE,
            published_at=ctx.clock(),
        )
        session.add(parent)
        await session.flush()
        session.add(
            Comment(
                uri=f"{BASE_URL}/comments/1",
                local=True,
                story_id=first.id,
                parent_id=parent.id,
                in_reply_to=str(parent.uri),
                author_id=amina.id,
                content_html="<p>Forty metres.</p>",
                state=CommentState.PENDING,
                published_at=ctx.clock(),
            )
        )


async def _snapshot(ctx: Context) -> dict[str, object]:
    async with ctx.sessions() as session:

        async def rows(query):  # type: ignore[no-untyped-def]
            return sorted(tuple(r) for r in (await session.execute(query)).all())

        return {
            "stories": await rows(
                select(Story.id, Story.uri, Story.title, Story.content_html, Story.published_at)
            ),
            "comments": await rows(
                select(Comment.id, Comment.uri, Comment.parent_id, Comment.state)
            ),
            "followers": await rows(select(Follow.follower_id, Follow.followed_id, Follow.state)),
            "keys": await rows(
                select(Actor.uri, Actor.key_id, Actor.public_key_pem, Actor.private_key_pem)
            ),
            "jobs": await rows(
                select(Job.id, Job.kind, Job.state, Job.run_at).where(Job.state == JobState.QUEUED)
            ),
            "payloads": sorted(
                str(sorted(p.items()))
                for p in (await session.execute(select(Job.payload))).scalars()
            ),
            "counts": {
                table.name: (
                    await session.execute(select(func.count()).select_from(table))
                ).scalar_one()
                for table in Base.metadata.sorted_tables
            },
        }


def _copy_to(source_env: dict[str, str], target: str) -> None:
    parser = argparse.ArgumentParser()
    add_ops_commands(parser.add_subparsers(dest="command", required=True), argparse.ArgumentParser)
    args = parser.parse_args(["copy-to", target, "--batch-size", "7"])  # several batches
    COMMANDS[args.command](Settings.from_environ(source_env, env_file=None), args)


def test_copy_to_moves_every_story_comment_follower_key_and_queued_job(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source_env = _environ(f"sqlite+aiosqlite:///{tmp_path / 'stories.db'}", tmp_path)
    source = Context.build(Settings.from_environ(source_env, env_file=None))
    target_url = asyncio.run(_postgresql("CREATE"))
    target = Context.build(
        Settings.from_environ(_environ(target_url, tmp_path / "target"), env_file=None)
    )

    async def prepare() -> dict[str, object]:
        await _fill(source)
        snapshot = await _snapshot(source)
        await source.close()
        return snapshot

    try:
        before = asyncio.run(prepare())
        counts = before["counts"]
        assert isinstance(counts, dict)
        assert counts["stories"] == 2 and counts["comments"] == 2 and counts["follows"] == 20
        assert len(before["jobs"]) > 2  # queued deliveries, never run

        _copy_to(source_env, target_url.replace("postgresql+asyncpg://", "postgresql://"))
        out = capsys.readouterr()
        assert "every table's row count matches" in out.out

        async def check() -> None:
            assert await is_current(target.engine)
            assert await _snapshot(target) == before
            # The sequences moved past the copied ids: new rows get fresh ones.
            async with target.sessions.begin() as session:
                job = queue.enqueue(session, target, "deliver", {"activity": 1, "inbox": "x"})
                await session.flush()
                assert job.id > max(row[0] for row in before["jobs"])  # type: ignore[union-attr]

        asyncio.run(check())

        # A second copy into the now non-empty database is refused and changes nothing.
        with pytest.raises(Conflict, match="not empty"):
            _copy_to(source_env, target_url)
    finally:
        asyncio.run(target.close())
        asyncio.run(_postgresql("DROP"))


async def _postgresql(action: str) -> str:
    """Create (or drop) an empty database on the test PostgreSQL server, whatever the backend."""
    import asyncpg

    from tests.support.databases import _pg_base, _pg_url

    dsn, base = _pg_base()
    name = f"{base}_copy{os.getpid()}"
    connection = await asyncpg.connect(dsn + base)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if action == "CREATE":
            await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return _pg_url(name)
