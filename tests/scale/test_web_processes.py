"""Issue 7: `serve --workers N`, several web processes on one machine that act as one instance.

The processes share the listening socket; which one answers a connection is the kernel's choice.
To make it ours, the test stops one process (SIGSTOP: it cannot accept) so the other must answer,
then swaps them: a CSRF token issued by one process is accepted by the other, and a session
cookie signed by one is honoured by the other, because the secret lives in the database.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.scale.cluster import cluster, wait_for
from tests.support.databases import DatabaseTemplates, backend_name
from tests.support.instances import csrf_from
from tests.support.servers import COMMAND, free_port

PASSWORD = "correct horse battery staple"


def children(pid: int) -> list[int]:
    """The serving processes uvicorn's supervisor started (its direct children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"resource_tracker" not in cmdline:
            found.append(int(entry.name))
    return sorted(found)


@contextmanager
def only(running: int, stopped: list[int]) -> Iterator[None]:
    """While inside, every process in `stopped` is frozen, so `running` answers."""
    for pid in stopped:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in stopped:
            os.kill(pid, signal.SIGCONT)


def fresh_get(url: str, cookies: httpx.Cookies | None = None) -> httpx.Response:
    # A new connection each time: a kept-alive one would stay with the process that accepted it.
    with httpx.Client(timeout=10, cookies=cookies) as client:
        return client.get(url)


@pytest.mark.slow
@pytest.mark.skipif(
    backend_name() != "postgresql",
    reason="serve --workers above 1 needs PostgreSQL (SQLite refuses it: the next test). Run "
    "with FEDIVERSE_STORIES_TEST_BACKEND=postgresql",
)
def test_two_web_processes_share_csrf_and_sessions(
    database_templates: DatabaseTemplates, tmp_path: Path
) -> None:
    with cluster(database_templates, tmp_path) as site:
        site.cli("user", "add", "mira", "--role", "moderator", "--password-stdin", stdin=PASSWORD)
        port = site.base_port
        supervisor = site.serve(port, "--workers", "2")
        web = wait_for(
            lambda: (found := children(supervisor.pid)) and len(found) == 2 and found,
            "two web processes",
        )
        base = f"http://127.0.0.1:{port}"
        for pid in web:  # each one answers on its own
            with only(pid, [other for other in web if other != pid]):
                assert fresh_get(f"{base}/healthz").status_code == 200

        first, second = web
        with only(first, [second]):
            login_page = fresh_get(f"{base}/login")
            token = csrf_from(login_page.text)
            cookies = login_page.cookies
        with only(second, [first]), httpx.Client(timeout=10, cookies=cookies) as client:
            signed_in = client.post(
                f"{base}/login",
                data={"username": "mira", "password": PASSWORD, "csrf_token": token},
            )
            assert signed_in.status_code in (302, 303), signed_in.text[:300]
            session = client.cookies
        with only(first, [second]):
            page = fresh_get(f"{base}/admin/comments", cookies=session)
        assert page.status_code == 200
        assert "Comment moderation" in page.text


def test_several_web_processes_are_refused_on_sqlite(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FEDIVERSE_STORIES_")}
    environ.update(
        {
            "FEDIVERSE_STORIES_DATA_DIR": str(tmp_path),
            "FEDIVERSE_STORIES_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/stories.db",
        }
    )
    done = subprocess.run(
        [COMMAND, "serve", "--port", str(free_port()), "--workers", "2"],
        env=environ,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "--workers above 1 needs PostgreSQL" in done.stderr
    assert not (tmp_path / "stories.db").exists()  # refused before anything was created
