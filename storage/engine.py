"""Engine and connection settings, and the one way to open a transaction."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from storage.errors import Unavailable
from storage.postgresql import postgresql_connect_args

POOL_SIZE = 5
"""Connections per process: storage.database runs one thread per connection."""


def make_engine(url: str, *, busy_timeout: float = 5.0, pool_size: int = POOL_SIZE, create: bool = True) -> Engine:
    """An engine for `url` with at most `pool_size` connections, where waiting for a connection,
    a lock or an answer is bounded by `busy_timeout` seconds (then `Unavailable`).

    A SQLite file gets WAL, synchronous=FULL and enforced foreign keys. With `create` (migrations)
    its folder and file are made on first connect; without (the serving service), a file that is
    not there is `Unavailable`: made anew, empty, it would take the place of a database that was
    only moved or not yet mounted, and SQLite would drop that database's -wal beside it.

    PostgreSQL (`postgresql+psycopg://`) gets a statement timeout and TCP timeouts, and no
    server-side prepared statements, so that it works behind PgBouncer in transaction pooling mode."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        engine = create_engine(
            url,
            hide_parameters=True,  # an error's log line names the statement, never a client's values
            pool_size=pool_size,
            max_overflow=0,
            pool_timeout=busy_timeout,
            connect_args=postgresql_connect_args(busy_timeout),
        )
        _configure_postgresql(engine, busy_timeout)
        return engine
    path = parsed.database
    if not create and path and path != ":memory:" and not path.startswith("file:"):
        # Quoted: in a URI, a "#" or "?" in the path would start a fragment or a query.
        uri = f"file:{quote(str(Path(path).resolve()))}?mode=rw"
        parsed = parsed.set(database=uri, query={**parsed.query, "uri": "true"})
    # Waiting for a pooled connection is bounded like waiting for a lock: past it, Unavailable.
    # SQLite needs three at least: storage.database keeps one for the event loop, one for its
    # writer thread, one or more for its reader threads.
    engine = create_engine(
        parsed,
        hide_parameters=True,
        pool_size=max(pool_size, 3),
        max_overflow=0,
        pool_timeout=busy_timeout,
        connect_args={"timeout": busy_timeout},
    )
    _configure_sqlite(engine, busy_timeout, parsed.database)
    return engine


def asynchronous(engine: Engine, *, pool_size: int) -> AsyncEngine:
    """`engine`'s PostgreSQL database through psycopg's asynchronous connections, at most
    `pool_size` of them, set up as `engine` is: the same timeouts and session settings. Its
    connections belong to the event loop that opens them."""
    timeout = engine.pool.timeout()  # type: ignore[attr-defined]
    twin = create_async_engine(
        engine.url,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=timeout,
        connect_args=postgresql_connect_args(timeout),
    )
    _configure_postgresql(twin.sync_engine, timeout)
    return twin


def _configure_postgresql(engine: Engine, timeout: float) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Bounds a statement that waits for a lock or runs long. Behind PgBouncer in transaction
        # mode a session setting may land on another server connection: set PgBouncer's own
        # query_timeout there (docs/scaling.md).
        # The session in UTC, whatever the server's or the database's time zone: a zone west of
        # UTC turns the oldest instants into year 0, which psycopg cannot read. PgBouncer tracks
        # TimeZone per client and sets it on every server connection it lends (it refuses the
        # `options` startup parameter, so it is set here, not at connect time).
        with dbapi_connection.cursor() as cursor:
            cursor.execute(f"SET statement_timeout = {int(timeout * 1000)}")
            cursor.execute("SET TIME ZONE 'UTC'")
        dbapi_connection.commit()


def _configure_sqlite(engine: Engine, busy_timeout: float, path: str | None) -> None:
    @event.listens_for(engine, "do_connect")
    def make_folder(*_args: Any) -> None:
        if path and path != ":memory:" and not path.startswith("file:"):
            # Where the folder cannot be made, sqlite3 itself fails to open the file: Unavailable.
            with contextlib.suppress(OSError):
                Path(path).parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin (see "begin").
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # A writer takes the write lock up front, so that it waits its turn (busy timeout) instead
        # of failing at once when another writer committed after its first read. A transaction
        # storage.database began on the driver itself is the one SQLAlchemy's joins.
        if not conn.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("write") else "BEGIN")


@contextmanager
def transaction(engine: Engine, *, write: bool = False) -> Iterator[Connection]:
    """One transaction on a connection of its own, committed when the block ends and rolled back
    if it raises; a database that cannot be reached or stays locked raises `Unavailable`."""
    with outages_as_unavailable(), engine.connect() as conn:
        if write:
            conn.execution_options(write=True)
        with conn.begin():
            yield conn


@contextmanager
def outages_as_unavailable() -> Iterator[None]:
    """Turns the driver's "the database cannot serve now" into `Unavailable`; any other error
    (a mistake in the schema or the SQL) goes on as it is."""
    try:
        yield
    except exc.TimeoutError as error:  # no pooled connection came free in time
        raise Unavailable(str(error), cause="it is busy: no connection came free in time") from error
    except exc.DBAPIError as error:
        if not _is_outage(error):
            raise
        raise Unavailable(str(error.orig), cause=_cause(error)) from error


# SQLite's primary result codes that mean "the database cannot serve now", as opposed to a
# mistake in the schema or the SQL (SQLITE_ERROR: "no such table", a syntax error), which is a bug.
# Each with the cause a client reads in the 503 (the log has the driver's own words, path included).
_SQLITE_OUTAGES = {
    5: "it is busy: locked by another writer",  # SQLITE_BUSY
    6: "it is busy: a table is locked",  # SQLITE_LOCKED
    7: "it ran out of memory",  # SQLITE_NOMEM
    8: "its file is read-only",  # SQLITE_READONLY
    10: "its file cannot be read or written (an I/O error)",  # SQLITE_IOERR
    13: "its disk is full",  # SQLITE_FULL
    14: "its file cannot be opened",  # SQLITE_CANTOPEN
    15: "it is busy: a locking protocol error",  # SQLITE_PROTOCOL
    26: "its file is not a database",  # SQLITE_NOTADB: the file at the path is not (or no longer) one
    # storage.database stops a transaction still running DB_TIMEOUT after it was asked for.
    9: "it did not answer within DB_TIMEOUT",  # SQLITE_INTERRUPT
}


def _is_outage(error: exc.DBAPIError) -> bool:
    """Whether the driver's error says the database is out of reach: by its result code on
    sqlite3 (whose "file is not a database" is a DatabaseError), by its class on other drivers,
    where OperationalError and InterfaceError mean just that (connection lost, refused)."""
    if isinstance(error.orig, sqlite3.Error):
        return (getattr(error.orig, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_OUTAGES
    return isinstance(error, exc.OperationalError | exc.InterfaceError)


def _cause(error: exc.DBAPIError) -> str:
    """The kind of outage, in words that name no path, host or user."""
    if isinstance(error.orig, sqlite3.Error):
        return _SQLITE_OUTAGES[getattr(error.orig, "sqlite_errorcode", 0) & 0xFF]
    if type(error.orig).__name__ == "QueryCanceled":  # psycopg: the statement timeout (DB_TIMEOUT)
        return "it did not answer within DB_TIMEOUT"
    return "its server cannot be reached, or the connection to it was lost"
