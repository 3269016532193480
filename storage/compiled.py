"""Statements on a request's hot path, compiled once and run on the driver's own cursor.

SQLAlchemy's execution around a statement (its cache key, execution context and result object)
costs SQLite ten times the statement: about 60 µs against 5 µs for a session read by id; on
PostgreSQL, through its asyncio bridge, it cost a create 266 µs of its 1,458 (docs/benchmarks.md).
A `Compiled` is a Core statement, written and typed as any other, that SQLAlchemy compiles once
per database (on PostgreSQL an INSERT once per set of columns given); each run binds its
parameters and reads its columns with the statement's own types (their SQLAlchemy processors), and
turns a driver error into SQLAlchemy's own exception, as `Connection.execute` does, so callers and
`storage.engine` see no difference. On PostgreSQL it also does what `Connection.execute` does for
a connection the driver found broken (invalidates it, so that the pool replaces it), and tells
`before_cursor_execute` listeners of each statement. SQLite and PostgreSQL are the only databases
the service runs on."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, exc
from sqlalchemy.sql import Select
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeEngine

Processor = Callable[[Any], Any] | None


@contextmanager
def driver_errors(statement: str, dialect: Dialect, parameters: Sequence[Any] = ()) -> Iterator[None]:
    """sqlite3's errors raised as SQLAlchemy's own exceptions, as `Connection.execute` raises them
    (an IntegrityError as sqlalchemy.exc.IntegrityError, with the driver's error as `orig`)."""
    try:
        yield
    except sqlite3.Error as error:
        raise exc.DBAPIError.instance(
            statement, parameters, error, sqlite3.Error, hide_parameters=True, dialect=dialect
        ) from error


@dataclass(frozen=True)
class _ForSqlite:
    sql: str
    parameters: tuple[tuple[str, Any, Processor], ...]  # in the statement's order: name, default, bind
    columns: tuple[Processor, ...]


@dataclass(frozen=True)
class _ForPostgresql:
    compiled: SQLCompiler
    sql: str
    binds: tuple[tuple[str, Callable[[Any], Any]], ...]  # the parameters that have a bind processor
    columns: tuple[Processor, ...]


class Compiled:
    """`statement`, whose bound parameters are named (`bindparam("id")`) or literal values."""

    def __init__(self, statement: Select[Any] | UpdateBase) -> None:
        self.statement = statement
        self._sqlite: _ForSqlite | None = None
        self._postgresql: dict[frozenset[str], _ForPostgresql] = {}

    def all(self, conn: Connection, parameters: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        """Every row the statement answers, each a sequence of its columns' values."""
        if conn.dialect.name == "postgresql":
            return self._all_on_postgresql(conn, parameters)
        compiled = self._sqlite or self._compile(conn.dialect)  # SQLite, the service's other database
        values = [
            bind(value) if bind else value
            for name, default, bind in compiled.parameters
            for value in (parameters.get(name, default),)
        ]
        driver: sqlite3.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        with driver_errors(compiled.sql, conn.dialect, values):
            rows = driver.execute(compiled.sql, values).fetchall()
        return _read(rows, compiled.columns)

    def first(self, conn: Connection, parameters: Mapping[str, Any]) -> Sequence[Any] | None:
        """The first row the statement answers, or None."""
        rows = self.all(conn, parameters)
        return rows[0] if rows else None

    def scalar(self, conn: Connection, parameters: Mapping[str, Any]) -> Any:
        """The first column of the first row the statement answers, or None."""
        row = self.first(conn, parameters)
        return row[0] if row else None

    def _all_on_postgresql(self, conn: Connection, parameters: Mapping[str, Any]) -> Sequence[Sequence[Any]]:
        names = frozenset(parameters)  # an INSERT's columns are those it is given values for
        compiled = self._postgresql.get(names) or self._compile_for_postgresql(conn.dialect, names)
        values = compiled.compiled.construct_params(parameters)
        for name, bind in compiled.binds:
            values[name] = bind(values[name])
        sql = compiled.sql
        dbapi: Any = conn.connection.dbapi_connection
        cursor = dbapi.cursor()
        try:
            for listener in conn.dispatch.before_cursor_execute:
                sql, values = listener(conn, cursor, sql, values, None, False)
            cursor.execute(sql, values)
            rows = cursor.fetchall()
        except conn.dialect.loaded_dbapi.Error as error:
            # As Connection.execute does: a connection the driver found broken is invalidated at
            # once (the pool opens a new one; left to the pool, it would log an error with its
            # traceback when it resets it), and the error says so.
            lost = conn.dialect.is_disconnect(error, dbapi, cursor)
            if lost:
                conn.invalidate(error)
            raise exc.DBAPIError.instance(
                sql,
                values,
                error,
                conn.dialect.loaded_dbapi.Error,
                hide_parameters=True,
                connection_invalidated=lost,
                dialect=conn.dialect,
            ) from error
        finally:
            cursor.close()
        return _read(rows, compiled.columns)

    def _compile_for_postgresql(self, dialect: Dialect, names: frozenset[str]) -> _ForPostgresql:
        compiled = self.statement.compile(dialect=dialect, column_keys=sorted(names))
        assert isinstance(compiled, SQLCompiler)
        binds = [
            (name, bind.type.dialect_impl(dialect).bind_processor(dialect))
            for bind, name in compiled.bind_names.items()
        ]
        self._postgresql[names] = _ForPostgresql(
            compiled=compiled,
            sql=str(compiled),
            binds=tuple((name, process) for name, process in binds if process is not None),
            columns=_column_processors(self.statement, dialect),
        )
        return self._postgresql[names]

    def _compile(self, dialect: Dialect) -> _ForSqlite:
        statement = self.statement
        compiled = statement.compile(dialect=dialect)
        binds = compiled.binds
        self._sqlite = _ForSqlite(
            sql=str(compiled),
            parameters=tuple(
                (name, binds[name].value, binds[name].type.dialect_impl(dialect).bind_processor(dialect))
                for name in compiled.positiontup or ()
            ),
            columns=_column_processors(statement, dialect),
        )
        return self._sqlite


def _read(rows: Sequence[Sequence[Any]], columns: tuple[Processor, ...]) -> Sequence[Sequence[Any]]:
    """`rows` as the driver gave them, each column read with its processor where it has one."""
    if not any(columns):
        return rows
    return [tuple(read(value) if read else value for read, value in zip(columns, row, strict=True)) for row in rows]


def _column_processors(statement: Select[Any] | UpdateBase, dialect: Dialect) -> tuple[Processor, ...]:
    """How `dialect`'s values of the statement's columns (or those it returns) are read."""
    types: list[TypeEngine[Any]]
    if isinstance(statement, Select):
        types = [column.type for column in statement.selected_columns]
    else:
        types = [column["type"] for column in statement.returning_column_descriptions]
    return tuple(type_.dialect_impl(dialect).result_processor(dialect, None) for type_ in types)
