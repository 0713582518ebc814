"""Operations commands: `copy-to DATABASE_URL` (move an instance from SQLite to PostgreSQL).

cli.py registers them with `add_ops_commands(commands, _Parser)` and merges `COMMANDS`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from fediverse_stories.db.engine import make_engine
from fediverse_stories.services.copy_instance import DEFAULT_BATCH, CopyResult, copy_instance
from fediverse_stories.services.errors import Invalid, ServiceError
from fediverse_stories.settings import Settings


def add_ops_commands(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """Add `copy-to` to the top-level subparsers."""
    copy_to = commands.add_parser(
        "copy-to",
        help="copy this instance's database into a new, empty PostgreSQL database",
        description=(
            "Copy every row of the configured database (FEDIVERSE_STORIES_DATABASE_URL, by "
            "default the SQLite file in the data dir) into DATABASE_URL, which is migrated "
            "first and must be empty. Stop serve and worker processes first."
        ),
    )
    copy_to.add_argument(
        "target", metavar="DATABASE_URL", help="postgresql+asyncpg://USER:PASSWORD@HOST:PORT/DB"
    )
    copy_to.add_argument("--batch-size", type=int, default=DEFAULT_BATCH, help="rows per INSERT")


def target_url(raw: str) -> str:
    """The target as an asyncpg URL; `postgresql://` and `postgres://` are accepted too."""
    for prefix in ("postgresql://", "postgres://"):
        if raw.startswith(prefix):
            raw = "postgresql+asyncpg://" + raw[len(prefix) :]
    if not raw.startswith("postgresql+asyncpg://"):
        raise Invalid("DATABASE_URL must be a PostgreSQL URL: postgresql+asyncpg://USER@HOST/DB")
    try:
        make_url(raw)
    except ArgumentError:
        raise Invalid("DATABASE_URL is not a valid database URL") from None
    return raw


def _redacted(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def cmd_copy_to(settings: Settings, args: argparse.Namespace) -> None:
    target = target_url(args.target)
    if make_url(target) == make_url(settings.database_url):
        raise Invalid("DATABASE_URL is this instance's own database")

    async def run() -> CopyResult:
        source_engine = make_engine(settings.database_url)
        target_engine = make_engine(target, pool_size=1, max_overflow=1)
        try:
            return await copy_instance(
                source_engine, target_engine, batch_size=args.batch_size, progress=_progress
            )
        finally:
            await source_engine.dispose()
            await target_engine.dispose()

    try:
        result = asyncio.run(run())
    except (OperationalError, DBAPIError, OSError) as error:
        original = getattr(error, "orig", None) or error
        lines = str(original).strip().splitlines()
        reason = lines[0] if lines else type(original).__name__
        raise ServiceError(
            f"copying to {_redacted(target)} failed, nothing kept: {reason}"
        ) from None
    print(
        f"Copied {result.total} rows in {len(result.rows)} tables to {_redacted(target)}; "
        "every table's row count matches."
    )
    print(
        "Now set FEDIVERSE_STORIES_DATABASE_URL to it, copy the data dir's media, and start "
        "the processes."
    )


def _progress(table: str, rows: int) -> None:
    print(f"{table}: {rows} rows", file=sys.stderr)


COMMANDS: dict[str, Callable[[Settings, argparse.Namespace], None]] = {
    "copy-to": cmd_copy_to,
}
