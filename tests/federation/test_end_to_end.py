"""Two real `fediverse-stories serve` processes on loopback federate through the real CLI.

Users are made with `user add`, B's member follows A's author with `follow`, A publishes with
`story publish`, and each process's own worker delivers: every request between them is signed
and verified for real, over TCP.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from fediverse_stories.context import Context
from fediverse_stories.db.models import Story
from fediverse_stories.settings import Settings
from tests.support.databases import DatabaseTemplates
from tests.support.servers import COMMAND, free_port, serving

pytestmark = pytest.mark.slow


@dataclass
class Server:
    base_url: str
    host: str  # 127.0.0.1:PORT, the domain in handles
    env: dict[str, str]

    def cli(self, *args: str) -> str:
        """Run the real CLI against this server's database; its stdout."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FEDIVERSE_STORIES_")}
        full_env.update(self.env)
        done = subprocess.run(
            [COMMAND, *args],
            env=full_env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done.stdout


@pytest.fixture
def two_servers(
    database_templates: DatabaseTemplates, tmp_path: Path
) -> Iterator[tuple[Server, Server]]:
    servers: list[Server] = []
    databases: list[str] = []
    for name in ("a", "b"):
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        database_url = asyncio.run(database_templates.new_database(base_url))
        databases.append(database_url)
        data_dir = tmp_path / name
        data_dir.mkdir()
        env = database_templates.settings_environ(base_url, database_url, data_dir)
        env["FEDIVERSE_STORIES_ALLOW_PRIVATE_ADDRESSES"] = "1"
        env["FEDIVERSE_STORIES_WORKER_IDLE_SLEEP_SECONDS"] = "0.2"
        servers.append(Server(base_url, f"127.0.0.1:{port}", env))
    try:
        a, b = servers
        with serving(a.env, int(a.host.rsplit(":", 1)[1])):
            with serving(b.env, int(b.host.rsplit(":", 1)[1])):
                yield a, b
    finally:
        for database_url in databases:
            asyncio.run(database_templates.drop(database_url))


def wait_for(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.2)


def stored_story(server: Server, uri: str) -> Story | None:
    async def query() -> Story | None:
        ctx = Context.build(Settings.from_environ(server.env, env_file=None))
        try:
            async with ctx.sessions() as session:
                found = await session.execute(select(Story).where(Story.uri == uri))
                return found.scalar_one_or_none()
        finally:
            await ctx.close()

    return asyncio.run(query())


def test_a_follow_and_a_story_travel_between_two_real_servers(
    two_servers: tuple[Server, Server], tmp_path: Path
) -> None:
    a, b = two_servers
    assert "Password:" in a.cli("user", "add", "amina", "--role", "author")
    b.cli("user", "add", "bob", "--role", "author")

    b.cli("follow", f"amina@{a.host}", "--as", "bob")
    bob_uri = f"{b.base_url}/users/bob"

    def a_lists_bob() -> bool:
        return any(
            line.split("\t")[1:] == [bob_uri, "accepted"]
            for line in a.cli("follower", "list", "amina").splitlines()
        )

    wait_for(a_lists_bob, "A to list bob as an accepted follower of amina")

    body = tmp_path / "story.md"
    body.write_text("We *listened* first.\n", encoding="utf-8")
    url = a.cli(
        "story", "publish", "--author", "amina", "--title", "Listening first", str(body)
    ).strip()
    assert url.startswith(f"{a.base_url}/stories/")

    wait_for(lambda: stored_story(b, url) is not None, "B to receive the story")
    copy = stored_story(b, url)
    assert copy is not None and copy.title == "Listening first"
    assert "<em>listened</em>" in copy.content_html
    assert not copy.local

    # The story shows on B's /network page, what bob's follows published.
    network = httpx.get(f"{b.base_url}/network", timeout=10)
    assert network.status_code == 200
    assert "Listening first" in network.text
