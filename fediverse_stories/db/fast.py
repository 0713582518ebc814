"""Core statements run straight on the DBAPI cursor: the inbox's hot path on SQLite.

SQLAlchemy's execution and result layers cost about 100 us a statement where sqlite3 itself
takes 5 (measured on these machines: BENCHMARKS.md, "Inbox"), and the inbox runs a few
statements per request. The SQL and the bind processing still come from SQLAlchemy: each
statement is compiled once per dialect and its parameters go through their column types'
processors, so what is written is exactly what the ORM would write. On other dialects
(PostgreSQL, where asyncpg needs no such shortcut) the statement runs through Core as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]
    processors: tuple[Callable[[Any], Any] | None, ...]
    # Values bound in the statement itself (a literal compared with, say), by name.
    fixed: dict[str, Any]


class FastStatement:
    """One Core statement with named bind parameters, executable on a sync Connection."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The result rows of a SELECT, as plain tuples (values as the driver returns them)."""
        if connection.dialect.name != "sqlite":
            return [tuple(row) for row in connection.execute(self.statement, dict(params))]
        cursor = self._run(connection, params)
        try:
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def insert(self, connection: Connection, params: Mapping[str, Any]) -> int:
        """Run an INSERT; the new row's integer primary key."""
        if connection.dialect.name != "sqlite":
            result = connection.execute(self.statement, dict(params))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])
        cursor = self._run(connection, params)
        try:
            return int(cursor.lastrowid)
        finally:
            cursor.close()

    def _run(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        compiled = self._for(connection.dialect)
        given = {**compiled.fixed, **params}
        values = tuple(
            process(given[name]) if process is not None else given[name]
            for name, process in zip(compiled.names, compiled.processors, strict=True)
        )
        # The DBAPI connection under SQLAlchemy's: same transaction, no result wrapping.
        cursor = connection.connection.cursor()
        dbapi = connection.dialect.loaded_dbapi
        try:
            cursor.execute(compiled.sql, values)
        except dbapi.Error as error:
            cursor.close()
            # As SQLAlchemy would raise it (IntegrityError, OperationalError, ...).
            raise DBAPIError.instance(
                compiled.sql, values, error, dbapi.Error, dialect=connection.dialect
            ) from error
        return cursor

    def _for(self, dialect: Dialect) -> _Compiled:
        found = self._compiled.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            names = tuple(compiled.positiontup or ())
            processors = tuple(
                compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)
                for name in names
            )
            fixed = {
                name: bind.effective_value
                for name, bind in compiled.binds.items()
                if bind.value is not None or bind.callable is not None
            }
            found = self._compiled[dialect.name] = _Compiled(
                compiled.string, names, processors, fixed
            )
        return found
