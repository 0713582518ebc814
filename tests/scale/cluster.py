"""Real processes on one database: `serve --no-worker`, `worker`, the sink, the CLI.

The same tests run on both backends: several `worker` processes claim from one queue on
PostgreSQL (`FOR UPDATE SKIP LOCKED`) and on one machine's SQLite file (each claim an UPDATE
guarded by the claimable test, under SQLite's one write lock; docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from fediverse_stories.context import Context
from fediverse_stories.settings import Settings
from tests.support.databases import DatabaseTemplates
from tests.support.peers import add_remote_followers
from tests.support.servers import COMMAND, free_port

SINK = Path(__file__).with_name("sink.py")


def wait_for(condition: Callable[[], Any], what: str, seconds: float = 30) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds} s waiting for {what}")
        time.sleep(0.05)


def payload_of(row: dict[str, Any]) -> dict[str, Any]:
    """A job row's payload: PostgreSQL's driver decodes JSON, SQLite's gives the text."""
    value = row["payload"]
    return value if isinstance(value, dict) else dict(json.loads(value))


@dataclass
class SinkProcess:
    port: int
    log: Path
    first: int
    count: int

    @property
    def netlocs(self) -> list[str]:
        return [f"127.0.0.{n}:{self.port}" for n in range(self.first, self.first + self.count)]

    def entries(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines() if line]


@contextmanager
def sink(tmp_path: Path, *, first: int, count: int, delay: float) -> Iterator[SinkProcess]:
    log = tmp_path / f"sink-{first}.jsonl"
    process = subprocess.Popen(
        [
            sys.executable,
            str(SINK),
            "--first",
            str(first),
            "--count",
            str(count),
            "--delay",
            str(delay),
            "--log",
            str(log),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / f"sink-{first}.err", "wb"),
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line:
            raise RuntimeError(
                f"the sink did not start: {(tmp_path / f'sink-{first}.err').read_text()}"
            )
        yield SinkProcess(int(line), log, first, count)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


@dataclass
class Cluster:
    """One instance on one fresh database, and the processes that serve it."""

    env: dict[str, str]
    base_url: str
    database_url: str  # postgresql+asyncpg://... or sqlite+aiosqlite:///...
    tmp_path: Path
    stack: ExitStack
    base_port: int
    web_ports: list[int] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("FEDIVERSE_STORIES_")}
        environ.update(self.env)
        environ.update(extra or {})
        return environ

    def cli(self, *args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [COMMAND, *args],
            env=self._environ(),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{args}: {done.stderr}"
        return done.stdout

    def _spawn(self, name: str, args: list[str], extra: dict[str, str]) -> subprocess.Popen[bytes]:
        err = self.tmp_path / f"{name}.err"
        process = subprocess.Popen(
            [COMMAND, *args],
            env=self._environ(extra),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(err, "wb"),  # a file, so a chatty process never blocks
        )
        self.stack.callback(_stop, process)
        return process

    def start(
        self, web_ports: list[int], workers: int, **extra: str
    ) -> list[subprocess.Popen[bytes]]:
        """Start `serve --no-worker` on each port and `workers` workers, all at once; wait until
        every web process answers /healthz and every worker runs. The new workers."""
        webs = [self._spawn_web(port, ["--no-worker"], extra) for port in web_ports]
        first = len(self.workers)
        started = [self._spawn(f"worker-{first + n}", ["worker"], extra) for n in range(workers)]
        self.workers.extend(started)

        def running(n: int, process: subprocess.Popen[bytes]) -> bool:
            err = (self.tmp_path / f"worker-{n}.err").read_text()
            if process.poll() is not None:
                raise RuntimeError(f"worker exited: {err}")
            return "Worker running" in err

        for port, process in zip(web_ports, webs, strict=True):
            self._wait_healthy(port, process)
        self.web_ports.extend(web_ports)
        for n, process in enumerate(started, start=first):
            wait_for(lambda: running(n, process), "a worker to start")
        return started

    def serve(self, port: int, *args: str, **extra: str) -> subprocess.Popen[bytes]:
        """`serve --port PORT ARGS...`, once it answers /healthz."""
        process = self._spawn_web(port, list(args), extra)
        self._wait_healthy(port, process)
        self.web_ports.append(port)
        return process

    def _spawn_web(
        self, port: int, args: list[str], extra: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        command = ["serve", "--host", "127.0.0.1", "--port", str(port), *args]
        return self._spawn(f"web-{port}", command, extra)

    def _wait_healthy(self, port: int, process: subprocess.Popen[bytes]) -> None:
        def healthy() -> bool:
            if process.poll() is not None:
                raise RuntimeError(
                    f"serve exited: {(self.tmp_path / f'web-{port}.err').read_text()}"
                )
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(healthy, f"serve on port {port}")

    def worker_prefix(self, process: subprocess.Popen[bytes]) -> str:
        """The start of the worker's id as it appears in jobs.claimed_by (host:pid:...)."""
        return f"{socket.gethostname()}:{process.pid}:"

    def sql(self, query: str, **params: Any) -> list[dict[str, Any]]:
        """The rows of one query, as dicts, read on a connection of its own (`:name` binds; a
        list binds as an IN list: `id IN :ids`)."""

        async def run() -> list[dict[str, Any]]:
            engine = create_async_engine(self.database_url, poolclass=NullPool)
            statement = text(query).bindparams(
                *(
                    bindparam(name, expanding=True)
                    for name, v in params.items()
                    if isinstance(v, list)
                )
            )
            try:
                async with engine.connect() as connection:
                    result = await connection.execute(statement, params)
                    return [dict(row) for row in result.mappings()]
            finally:
                await engine.dispose()

        return asyncio.run(run())

    def add_followers(self, author: str, followers: list[tuple[str, str, bool]]) -> None:
        async def run() -> None:
            ctx = Context.build(Settings.from_environ(self.env, env_file=None))
            try:
                await add_remote_followers(ctx, author, followers)
            finally:
                await ctx.close()

        asyncio.run(run())

    def publish(self, author: str, title: str) -> str:
        body = self.tmp_path / "story.md"
        body.write_text("Every village chose its own *water committee*.\n", encoding="utf-8")
        return self.cli("story", "publish", "--author", author, "--title", title, str(body)).strip()

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def cluster(
    database_templates: DatabaseTemplates, tmp_path: Path, **settings: str
) -> Iterator[Cluster]:
    """A fresh database (the suite's backend) initialised by `fediverse-stories init`; no
    process yet."""
    database_url = asyncio.run(database_templates.empty_database())
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {
        "FEDIVERSE_STORIES_BASE_URL": base_url,
        "FEDIVERSE_STORIES_DATABASE_URL": database_url,
        "FEDIVERSE_STORIES_DATA_DIR": str(data_dir),
        "FEDIVERSE_STORIES_ALLOW_PRIVATE_ADDRESSES": "1",
        "FEDIVERSE_STORIES_WORKER_IDLE_SLEEP_SECONDS": "0.2",
        **{f"FEDIVERSE_STORIES_{k.upper()}": v for k, v in settings.items()},
    }
    with ExitStack() as stack:
        instance = Cluster(env, base_url, database_url, tmp_path, stack, port)
        try:
            instance.cli("init")
            yield instance
        finally:
            for process in instance.workers:
                if process.poll() is None:
                    process.kill()
                    process.wait()
            stack.close()
            asyncio.run(database_templates.drop(database_url))
