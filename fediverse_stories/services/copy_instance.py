"""Copying a whole instance from one database to a fresh PostgreSQL database (SQLite -> PostgreSQL).

The target is migrated by the same Alembic migrations, must be empty, and receives every table
of the models in dependency order (parents before children), in batches, inside ONE transaction:
a copy that fails leaves the target as empty as it was. Then the PostgreSQL sequences behind the
integer keys are moved past the copied ids, and every table's row count is compared.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Integer, Table, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fediverse_stories.db.migrate import is_current, migrate
from fediverse_stories.db.models import Base
from fediverse_stories.services.errors import Conflict, Invalid

DEFAULT_BATCH = 1000


@dataclass(frozen=True)
class CopyResult:
    rows: dict[str, int]  # table name -> rows copied (and found in the target)

    @property
    def total(self) -> int:
        return sum(self.rows.values())


def tables() -> list[Table]:
    """Every table of the models, parents before children."""
    return list(Base.metadata.sorted_tables)


async def copy_instance(
    source: AsyncEngine,
    target: AsyncEngine,
    *,
    batch_size: int = DEFAULT_BATCH,
    progress: Callable[[str, int], None] | None = None,
) -> CopyResult:
    """Copy every row of `source` into the empty PostgreSQL database `target`."""
    if target.dialect.name != "postgresql":
        raise Invalid("the target must be a PostgreSQL database (postgresql+asyncpg://...)")
    if batch_size < 1:
        raise Invalid("the batch size must be at least 1")
    if not await is_current(source):
        raise Invalid(
            "the source database is not initialised or not at the latest migration: "
            "run `fediverse-stories init` (or `serve`) on it with this version first"
        )
    await migrate(target)
    async with target.connect() as connection:
        for table in tables():
            if (await connection.execute(select(table).limit(1))).first() is not None:
                raise Conflict(
                    f"the target database is not empty (table {table.name} has rows); "
                    "copy into a new, empty database"
                )
    copied: dict[str, int] = {}
    async with source.connect() as reader, target.begin() as writer:
        for table in tables():
            copied[table.name] = await _copy_table(reader, writer, table, batch_size)
            if progress is not None:
                progress(table.name, copied[table.name])
        await _reset_sequences(writer)
        for table in tables():
            found = (await writer.execute(select(func.count()).select_from(table))).scalar_one()
            expected = (await reader.execute(select(func.count()).select_from(table))).scalar_one()
            if found != copied[table.name] or found != expected:
                # Raising rolls the whole copy back: the target stays empty.
                raise Conflict(
                    f"table {table.name}: {expected} rows in the source, {copied[table.name]} "
                    f"copied, {found} in the target; nothing was kept"
                )
    return CopyResult(copied)


async def _copy_table(
    reader: AsyncConnection, writer: AsyncConnection, table: Table, batch_size: int
) -> int:
    # Ordered by primary key: a self-referencing row (a reply) comes after its parent.
    query = select(table).order_by(*table.primary_key.columns)
    count = 0
    result = await reader.stream(query)
    async for batch in result.partitions(batch_size):
        rows = [dict(row._mapping) for row in batch]
        await writer.execute(insert(table), rows)
        count += len(rows)
    return count


async def _reset_sequences(writer: AsyncConnection) -> None:
    """Move each serial key's sequence past the largest copied id, so new rows do not collide."""
    for table in tables():
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        sequence = (
            await writer.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table.name, "column": keys[0].name},
            )
        ).scalar_one()
        if sequence is None:  # a natural integer key, not generated
            continue
        largest = select(func.max(keys[0])).scalar_subquery()
        await writer.execute(
            select(func.setval(sequence, func.coalesce(largest, 1), largest.is_not(None)))
        )
