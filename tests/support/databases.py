"""Test databases: migrated and initialised once per base URL into a template, then copied per test.

SQLite templates are files copied with shutil; PostgreSQL ones are databases copied with
`CREATE DATABASE ... TEMPLATE`. FEDIVERSE_STORIES_TEST_BACKEND picks the backend;
FEDIVERSE_STORIES_TEST_DATABASE_URL names the PostgreSQL database whose server we use.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from fediverse_stories.context import Context
from fediverse_stories.services.instance import initialise
from fediverse_stories.settings import Settings

ADMIN_PASSWORD_FILE = "admin-password"


def backend_name() -> str:
    backend = os.environ.get("FEDIVERSE_STORIES_TEST_BACKEND", "sqlite")
    if backend not in ("sqlite", "postgresql"):
        raise RuntimeError(f"FEDIVERSE_STORIES_TEST_BACKEND={backend!r}: sqlite or postgresql")
    if backend == "postgresql" and not os.environ.get("FEDIVERSE_STORIES_TEST_DATABASE_URL"):
        raise RuntimeError("the postgresql backend needs FEDIVERSE_STORIES_TEST_DATABASE_URL")
    return backend


def _pg_base() -> tuple[str, str]:
    """(asyncpg DSN without database, the run's database name)."""
    url = os.environ["FEDIVERSE_STORIES_TEST_DATABASE_URL"].replace(
        "postgresql+asyncpg://", "postgresql://"
    )
    parts = urlsplit(url)
    name = parts.path.lstrip("/") or "test"
    return urlunsplit((parts.scheme, parts.netloc, "/", "", "")), name


class DatabaseTemplates:
    """Hands out fresh, initialised databases for a base URL, fast."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.backend = backend_name()
        self._templates: dict[str, str] = {}  # base URL -> template file path or database name
        self._admin_passwords: dict[str, str] = {}
        self._created: list[str] = []
        self._counter = itertools.count()
        self._lock = asyncio.Lock()
        self._run_id = f"{os.getpid()}"

    def settings_environ(self, base_url: str, database_url: str, data_dir: Path) -> dict[str, str]:
        return {
            "FEDIVERSE_STORIES_BASE_URL": base_url,
            "FEDIVERSE_STORIES_DATABASE_URL": database_url,
            "FEDIVERSE_STORIES_DATA_DIR": str(data_dir),
            "FEDIVERSE_STORIES_ALLOW_PRIVATE_ADDRESSES": "1",
        }

    async def new_database(self, base_url: str) -> str:
        """A fresh database URL holding an initialised instance for `base_url`."""
        async with self._lock:
            if base_url not in self._templates:
                await self._make_template(base_url)
        template = self._templates[base_url]
        n = next(self._counter)
        if self.backend == "sqlite":
            path = self.directory / f"db-{n}.sqlite"
            shutil.copyfile(template, path)
            return f"sqlite+aiosqlite:///{path}"
        dsn, base = _pg_base()
        name = f"{base}_t{self._run_id}_{n}"
        connection = await asyncpg.connect(dsn + base)
        try:
            await connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        finally:
            await connection.close()
        self._created.append(name)
        return _pg_url(name)

    def admin_password(self, base_url: str) -> str:
        return self._admin_passwords[base_url]

    async def drop(self, database_url: str) -> None:
        if self.backend == "sqlite":
            return
        name = database_url.rsplit("/", 1)[1]
        dsn, base = _pg_base()
        connection = await asyncpg.connect(dsn + base)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()
        if name in self._created:
            self._created.remove(name)

    async def empty_database(self) -> str:
        """A database with no schema at all (for migration tests)."""
        n = next(self._counter)
        if self.backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.directory / f'empty-{n}.sqlite'}"
        dsn, base = _pg_base()
        name = f"{base}_e{self._run_id}_{n}"
        connection = await asyncpg.connect(dsn + base)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        self._created.append(name)
        return _pg_url(name)

    async def _make_template(self, base_url: str) -> None:
        n = len(self._templates)
        if self.backend == "sqlite":
            path = self.directory / f"template-{n}.sqlite"
            url = f"sqlite+aiosqlite:///{path}"
            location = str(path)
        else:
            dsn, base = _pg_base()
            location = f"{base}_tpl{self._run_id}_{n}"
            connection = await asyncpg.connect(dsn + base)
            try:
                await connection.execute(f'CREATE DATABASE "{location}"')
            finally:
                await connection.close()
            self._created.append(location)
            url = _pg_url(location)
        settings = Settings.from_environ(
            self.settings_environ(base_url, url, self.directory), env_file=None
        )
        ctx = Context.build(settings)
        try:
            result = await initialise(ctx)
        finally:
            await ctx.close()
        assert result.admin_password is not None
        self._admin_passwords[base_url] = result.admin_password
        self._templates[base_url] = location

    def close(self) -> None:
        if self.backend != "postgresql" or not self._created:
            return

        async def drop_all() -> None:
            dsn, base = _pg_base()
            connection = await asyncpg.connect(dsn + base)
            try:
                for name in reversed(self._created):
                    await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            finally:
                await connection.close()

        asyncio.run(drop_all())


def _pg_url(name: str) -> str:
    dsn, _ = _pg_base()
    return dsn.replace("postgresql://", "postgresql+asyncpg://") + name
