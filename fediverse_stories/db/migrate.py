"""Bringing a database to the latest schema with Alembic, the only way the schema is made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from fediverse_stories.db import fulltext

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _upgrade(connection: Connection) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _is_current(connection: Connection) -> bool:
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    return set(MigrationContext.configure(connection).get_current_heads()) == heads


async def is_current(engine: AsyncEngine) -> bool:
    """True when the database is at the latest revision."""
    async with engine.connect() as connection:
        return await connection.run_sync(_is_current)


async def migrate(engine: AsyncEngine) -> bool:
    """Upgrade to the latest revision; True when something was applied."""
    if await is_current(engine):
        return False
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
    return True


def schema_drift(connection: Connection, metadata: MetaData) -> list[Any]:
    """What autogenerate would change to make the database match `metadata` (empty: no drift)."""
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "include_object": fulltext.include_object}
    )
    diffs: list[Any] = compare_metadata(context, metadata)
    return diffs
