"""Core statements run straight on the DBAPI cursor: the hot paths on SQLite.

SQLAlchemy's execution and result layers cost about 100 us a statement where sqlite3 itself
takes 5 (measured on these machines: BENCHMARKS.md, "Inbox"), and the inbox runs a few
statements per request, a fan-out's deliveries a few per batch. The SQL and the value
processing still come from SQLAlchemy: each statement is compiled once per dialect (and per
length of its expanding `IN` lists), its parameters go through their column types' bind
processors and its result columns through their result processors, so what is written and read
is exactly what Core would write and read. On other dialects (PostgreSQL, where asyncpg needs no
such shortcut) the statement runs through Core as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from sqlalchemy import Connection, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.sql.expression import Executable

Processor = Callable[[Any], Any] | None

# Expanded forms kept per statement: a batch's lists are at most batching.MAX_BATCH long, but
# a caller could bind longer ones; past this many forms, expand without keeping the form.
MAX_EXPANDED_FORMS = 512


@dataclass(frozen=True)
class _Compiled:
    sql: str
    # Where each positional value comes from: a parameter's name, and the index in its list
    # when the parameter is an expanding one (`IN :ids`), else None.
    sources: tuple[tuple[str, int | None], ...]
    processors: tuple[Processor, ...]
    # Values bound in the statement itself (a literal compared with, say), by name.
    fixed: dict[str, Any]
    # One per result column (RETURNING or SELECT), None where the driver's value is final.
    results: tuple[Processor, ...]


class FastStatement:
    """One Core statement with named bind parameters, executable on a sync Connection."""

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[int, ...]], _Compiled] = {}
        self._base: dict[str, tuple[Any, tuple[str, ...]]] = {}

    def rows(self, connection: Connection, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        """The result rows of a SELECT (or of an UPDATE's RETURNING), as plain tuples of the
        values Core would give."""
        if connection.dialect.name != "sqlite":
            return [tuple(row) for row in connection.execute(self.statement, dict(params))]
        compiled, cursor = self._run(connection, params)
        try:
            found = cursor.fetchall()
        finally:
            cursor.close()
        if not any(compiled.results):
            return list(found)
        return [
            tuple(
                value if process is None else process(value)
                for value, process in zip(row, compiled.results, strict=True)
            )
            for row in found
        ]

    def insert(self, connection: Connection, params: Mapping[str, Any]) -> int:
        """Run an INSERT; the new row's integer primary key."""
        if connection.dialect.name != "sqlite":
            result = connection.execute(self.statement, dict(params))
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])
        _, cursor = self._run(connection, params)
        try:
            return int(cursor.lastrowid)
        finally:
            cursor.close()

    def many(self, connection: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        """Run an INSERT, UPDATE or DELETE once per parameter set (no expanding lists)."""
        if not params:
            return
        if connection.dialect.name != "sqlite":
            connection.execute(self.statement, [dict(p) for p in params])
            return
        compiled = self._for(connection.dialect, params[0])
        values = [_values(compiled, p) for p in params]
        self._on_cursor(connection, compiled.sql, values, many=True).close()

    def _run(self, connection: Connection, params: Mapping[str, Any]) -> tuple[_Compiled, Any]:
        compiled = self._for(connection.dialect, params)
        values = _values(compiled, params)
        return compiled, self._on_cursor(connection, compiled.sql, values, many=False)

    def _on_cursor(self, connection: Connection, sql: str, values: Any, *, many: bool) -> Any:
        # The DBAPI connection under SQLAlchemy's: same transaction, no result wrapping.
        cursor = connection.connection.cursor()
        dbapi = connection.dialect.loaded_dbapi
        try:
            if many:
                cursor.executemany(sql, values)
            else:
                cursor.execute(sql, values)
        except dbapi.Error as error:
            cursor.close()
            # As SQLAlchemy would raise it (IntegrityError, OperationalError, ...).
            raise DBAPIError.instance(
                sql, values, error, dbapi.Error, dialect=connection.dialect
            ) from error
        return cursor

    def _for(self, dialect: Dialect, params: Mapping[str, Any]) -> _Compiled:
        base, expanding = self._base_for(dialect)
        lengths = tuple(len(params[name]) for name in expanding)
        found = self._compiled.get((dialect.name, lengths))
        if found is None:
            found = self._expand(dialect, base, expanding, lengths)
            if len(self._compiled) < MAX_EXPANDED_FORMS:
                self._compiled[(dialect.name, lengths)] = found
        return found

    def _base_for(self, dialect: Dialect) -> tuple[Any, tuple[str, ...]]:
        """The statement compiled for `dialect`, and the names of its expanding parameters."""
        found = self._base.get(dialect.name)
        if found is None:
            compiled = self.statement.compile(dialect=dialect)  # type: ignore[attr-defined]
            expanding = tuple(
                name
                for name in dict.fromkeys(compiled.positiontup or ())
                if compiled.binds[name].expanding
            )
            for bind in compiled.literal_execute_params:
                # Rendered into the SQL when the form is expanded (aggregate_strings' separator):
                # only a value fixed in the statement can be, as forms are kept per list length.
                if bind.required:
                    raise TypeError(f"FastStatement cannot render the literal parameter {bind.key}")
            found = self._base[dialect.name] = (compiled, expanding)
        return found

    def _expand(
        self, dialect: Dialect, compiled: Any, expanding: tuple[str, ...], lengths: tuple[int, ...]
    ) -> _Compiled:
        names = tuple(compiled.positiontup or ())
        sql = compiled.string
        sources: list[tuple[str, int | None]] = [(name, None) for name in names]
        if expanding or compiled.literal_execute_params:
            # SQLAlchemy renders the lists (an empty one as its own "no rows" form) and the
            # literal parameters; the lists' placeholder values only give their lengths.
            sample: dict[str, Any] = {
                name: None if bind.required else bind.effective_value
                for name, bind in compiled.binds.items()
            }
            sample.update({name: [None] * n for name, n in zip(expanding, lengths, strict=True)})
            state = compiled.construct_expanded_state(sample)
            origin = {
                new: (name, index)
                for name, news in state.parameter_expansion.items()
                for index, new in enumerate(news)
            }
            sql = state.statement
            sources = [origin.get(name, (name, None)) for name in state.positiontup or ()]
        processors = tuple(
            _bind_processor(compiled.binds[name].type, dialect) for name, _ in sources
        )
        fixed = {
            name: bind.effective_value for name, bind in compiled.binds.items() if not bind.required
        }
        fixed.update(_scalar_defaults(compiled))
        columns = getattr(self.statement, "exported_columns", ())
        results = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns
        )
        return _Compiled(sql, tuple(sources), processors, fixed, results)


# Timestamp processors shared by every statement, by dialect and type: a step binds one
# timestamp to several columns (an inbox activity's received_at, its job's run_at and
# created_at), and formatting one for SQLite costs more than the rest of its value handling.
_TIMESTAMP_PROCESSORS: dict[tuple[str, type, str], Processor] = {}


def _bind_processor(type_: Any, dialect: Dialect) -> Processor:
    process: Processor = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None or not _is_timestamp(type_):
        return process
    key = (dialect.name, type(type_), repr(type_))
    shared = _TIMESTAMP_PROCESSORS.get(key)
    if shared is None:
        shared = _TIMESTAMP_PROCESSORS[key] = _remembering_last(process)
    return shared


def _is_timestamp(type_: Any) -> bool:
    # A TypeDecorator (db.models.UTCDateTime) says `object`: its implementation's type tells.
    base = getattr(type_, "impl_instance", type_)
    try:
        return issubclass(base.python_type, (date, time))  # immutable: safe to remember
    except NotImplementedError:
        return False


def _remembering_last(process: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """`process` answering again at once for the very value (the same object) it last saw."""
    last: tuple[Any, Any] = (object(), None)

    def remembered(value: Any) -> Any:
        nonlocal last
        seen, answer = last  # one tuple, swapped whole: safe between threads
        if value is seen:
            return answer
        answer = process(value)
        last = (value, answer)
        return answer

    return remembered


def _scalar_defaults(compiled: Any) -> dict[str, Any]:
    """The Python-side defaults of the columns a statement leaves out, which Core's execution
    fills in: constants only (a callable default is refused rather than frozen at compile)."""
    defaults: dict[str, Any] = {}
    prefetched = [(c, c.default) for c in compiled.insert_prefetch] + [
        (c, c.onupdate) for c in compiled.update_prefetch
    ]
    for column, default in prefetched:
        if default is None or not default.is_scalar:
            raise TypeError(f"FastStatement cannot run the Python-side default of {column}")
        defaults[column.key] = default.arg
    return defaults


def _values(compiled: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...]:
    given = {**compiled.fixed, **params} if compiled.fixed else params
    values = []
    # A plain loop over pairs built together (no strict zip): a generator expression here cost
    # about a fifth more, on every statement of every request.
    for (name, index), process in zip(compiled.sources, compiled.processors):  # noqa: B905
        value = given[name] if index is None else given[name][index]
        values.append(value if process is None else process(value))
    return tuple(values)
