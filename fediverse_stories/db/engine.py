"""The async engine and session factory, with the per-backend settings each needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import create_engine, event, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, sessionmaker


def make_engine(database_url: str, **kwargs: Any) -> AsyncEngine:
    """An engine for `sqlite+aiosqlite://` (WAL, foreign keys, busy timeout) or `postgresql+asyncpg://`."""
    if database_url.startswith("sqlite"):
        engine = create_async_engine(database_url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine.sync_engine, "connect", _pragmas(30))
        return engine
    # Per process: a worker runs up to 32 jobs at once, each holding a connection only for its
    # short transactions (never across an HTTP request; its delivery steps are grouped into
    # shared transactions: batching.py), and a web process answers many
    # requests on few connections; 10 + 10 covers both. PostgreSQL's max_connections must be
    # about 20 x (web processes + workers) plus a margin (README "Scaling out").
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    kwargs.setdefault("pool_pre_ping", True)
    server_settings = {
        "statement_timeout": "30000",  # no statement runs longer than 30 s
        # A transaction left open (a stuck process) must not keep claimed rows locked.
        "idle_in_transaction_session_timeout": "60000",
        "application_name": "fediverse-stories",  # shows in pg_stat_activity
    }
    return create_async_engine(
        database_url,
        connect_args={"server_settings": server_settings, "timeout": 10},
        **kwargs,
    )


def make_one_hop_sessionmaker(
    database_url: str, *, busy_timeout: float = 30
) -> sessionmaker[Session] | None:
    """Synchronous sessions on the same SQLite file, for steps run whole at once.

    aiosqlite hands every statement to its own thread and back; on the inbox's hot path those
    hops, not SQL, were the cost (BENCHMARKS.md). `busy_timeout` is how long a statement waits
    for another writer's lock (0: fail at once). None for PostgreSQL (asyncpg needs no thread)
    and for in-memory SQLite (a second engine would see another database).
    """
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    engine = create_engine(
        url.set(drivername="sqlite+pysqlite"),
        connect_args={"timeout": busy_timeout, "check_same_thread": False},
    )
    event.listen(engine, "connect", _pragmas(busy_timeout))
    return sessionmaker(engine, expire_on_commit=False)


def _pragmas(busy_timeout: float) -> Callable[[Any, Any], None]:
    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
        cursor.close()

    return set_pragmas


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)
