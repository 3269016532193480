"""The database as the asynchronous service sees it. On PostgreSQL each transaction runs on the
event loop through psycopg's asynchronous connection: a slow or locked database holds the
request that waits for it, never the loop. On SQLite, whose statements take microseconds, a
transaction runs on the event loop itself unless it would wait or run long: a lock held elsewhere
is waited for with asyncio's sleeps, and a transaction that runs past a few milliseconds is stopped
and run again on a thread."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, exc
from sqlalchemy.util import greenlet_spawn

from storage.compiled import driver_errors
from storage.engine import asynchronous, outages_as_unavailable
from storage.errors import Unavailable

P = ParamSpec("P")
T = TypeVar("T")

LOOP_BUDGET = 0.01
"""Seconds a SQLite transaction may run on the event loop before it is stopped and run again on a
thread (every other request waits while it runs there)."""
PROGRESS_STEPS = 1000
"""SQLite virtual-machine steps between two looks at the clock: a few tens of microseconds."""
FIRST_WAIT, LONGEST_WAIT = 0.0005, 0.01
"""Seconds between a SQLite transaction's tries while another process holds the lock it needs:
doubling from the first to the longest, until the timeout."""
_BUSY, _INTERRUPTED = 5, 9  # SQLite's primary result codes SQLITE_BUSY and SQLITE_INTERRUPT
_BUSY_CAUSE = "it is busy: locked by another writer"


class Database:
    """Runs `work(conn, ...)` in one transaction and answers its result; `work` is plain
    synchronous code that must not wait on anything but the database.

    On PostgreSQL every transaction runs on the event loop, on one of at most `connections`
    pooled connections: `work` runs in a greenlet (SQLAlchemy's asyncio bridge), and each of its
    statements waits for the server's answer as the loop serves other requests. A read runs in
    autocommit (its statements see what was committed when each began, as they would at READ
    COMMITTED in a transaction); a write in one transaction. A connection lost on the way is
    replaced at the next checkout.

    On SQLite one connection of the event loop's own runs each transaction where it is asked for,
    with no hand-off to a thread: SQLite answers the service's statements in microseconds, and a
    thread hand-off costs more than the statements. It never blocks the loop on a lock: it does not
    use SQLite's busy handler, and a transaction that finds the file locked by another process is
    tried again after a short asyncio sleep, until `timeout` (then `Unavailable`). A transaction
    still running after LOOP_BUDGET seconds is interrupted (rolled back, nothing stored) and run
    again on a thread: writes on one writer thread (the file takes one writer at a time), reads on
    the others. So `connections` is the loop's one, the writer's and at least one reader's.

    Wherever it runs, a transaction that waited `timeout` seconds for its thread or connection is
    not started, and one still running `timeout` seconds after it was asked for is interrupted (on
    SQLite by its progress handler, on PostgreSQL by cancelling the statement, and by the server's
    statement timeout): each raises `Unavailable`, and nothing is stored."""

    def __init__(
        self,
        engine: Engine,
        *,
        connections: int,
        timeout: float,
        observe: Callable[[int, int], None] = lambda in_use, open_: None,
    ) -> None:
        self.timeout = timeout
        self._observe = observe
        self._in_use = 0
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._sqlite = engine.dialect.name == "sqlite"
        self._here: Connection | None = None  # the event loop's connection (SQLite)
        self._here_raw: Any = None
        self._opening: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the one the pool's connections belong to
        if self._sqlite:
            self.engine = engine
            readers = max(1, connections - 2)
            self._reads = ThreadPoolExecutor(readers, thread_name_prefix="db-read")
            self._writes = ThreadPoolExecutor(1, thread_name_prefix="db-write")
            self.connections = 1 + 1 + readers
        else:
            self._async = asynchronous(engine, pool_size=connections)
            self.engine = self._async.sync_engine  # its statements, events and pool
            self.connections = connections  # how many connections this opens at most

    async def read(self, work: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work`'s answer, from a read: a read-only transaction on SQLite, statements in autocommit
        on PostgreSQL."""
        if self._sqlite:
            return await self._here_or_on_thread(self._reads, False, work, *args, **kwargs)
        return await self._on_loop(False, work, *args, **kwargs)

    async def write(self, work: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work`'s answer, from a transaction that may write; committed before this returns."""
        if self._sqlite:
            return await self._here_or_on_thread(self._writes, True, work, *args, **kwargs)
        return await self._on_loop(True, work, *args, **kwargs)

    async def _on_loop(self, write: bool, work: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """`work` on PostgreSQL, answered or `Unavailable` within `timeout` of being asked for,
        however long it waited for a connection and then for the server."""
        self._on(asyncio.get_running_loop())
        connected: list[bool] = []  # whether a connection came, for the cause of a timeout
        try:
            async with asyncio.timeout(self.timeout):
                if write:
                    # All connections but one may write at once: the one left keeps reads going
                    # while writes wait on a lock.
                    async with self._write_slots:
                        return await self._transact_async(write, connected, work, args, kwargs)
                try:
                    return await self._transact_async(write, connected, work, args, kwargs)
                except Unavailable as error:
                    # A read that met a connection lost meanwhile (a restart, a cut) is tried once
                    # more on a new one. A write is not: it may have been committed before the loss.
                    if not _lost_connection(error):
                        raise
                    return await self._transact_async(write, connected, work, args, kwargs)
        except TimeoutError:
            # The statement that was running is cancelled on the server (psycopg does that) and
            # its connection closed (SQLAlchemy does that): nothing is stored.
            if not connected:
                busy = "it is busy: no connection came free in time"
                raise Unavailable(f"no connection came free in {self.timeout} s", cause=busy) from None
            late = "it did not answer within DB_TIMEOUT"
            raise Unavailable(f"no answer within {self.timeout} s", cause=late) from None

    def _on(self, loop: asyncio.AbstractEventLoop) -> None:
        """Makes `loop` the one the pool's connections and the write slots belong to."""
        if self._loop is not loop:
            if self._loop is not None:
                # A loop that is gone (a test's asyncio.run ended) left its connections unusable:
                # they are let go, not closed.
                self.engine.dispose(close=False)
            self._loop = loop
            self._write_slots = asyncio.Semaphore(max(1, self.connections - 1))

    async def _transact_async(
        self, write: bool, connected: list[bool], work: Callable[..., T], args: Any, kwargs: Any
    ) -> T:
        def transact() -> T:
            with outages_as_unavailable(), self.engine.connect() as conn:
                connected.append(True)
                if not write:
                    # At READ COMMITTED, which PostgreSQL gives by default, each statement reads a
                    # snapshot of its own inside a transaction as well: a read's BEGIN and COMMIT
                    # would cost two round trips and change nothing it reads.
                    conn.execution_options(isolation_level="AUTOCOMMIT")
                    return work(conn, *args, **kwargs)
                with conn.begin():
                    return work(conn, *args, **kwargs)

        self._in_use += 1
        try:
            return await greenlet_spawn(transact)
        finally:
            self._in_use -= 1
            pool: Any = self.engine.pool
            self._observe(self._in_use, pool.checkedin() + pool.checkedout())

    async def _here_or_on_thread(
        self, pool: ThreadPoolExecutor, write: bool, work: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> T:
        asked = time.monotonic()
        if self._here is None:
            await self._opened(pool)
        wait = FIRST_WAIT
        while True:
            try:
                return self._transact_here(write, work, args, kwargs)
            except _LockedElsewhere:
                if time.monotonic() + wait - asked > self.timeout:
                    raise Unavailable(f"the database stayed locked for {self.timeout} s", cause=_BUSY_CAUSE) from None
                await asyncio.sleep(wait)
                wait = min(wait * 2, LONGEST_WAIT)
            except _TooLongForTheLoop:
                return await self._on_thread(pool, write, asked, work, *args, **kwargs)

    def _transact_here(self, write: bool, work: Callable[..., T], args: Any, kwargs: Any) -> T:
        # The transaction is begun and ended on the driver's connection: SQLAlchemy's own begin,
        # commit and events cost more than a read. `work` that executes through SQLAlchemy joins
        # it (storage.engine's "begin" listener), and then it ends through SQLAlchemy.
        try:
            with outages_as_unavailable():
                conn = self._here_connection()
                driver = self._here_raw
                begin = "BEGIN IMMEDIATE" if write else "BEGIN"
                with driver_errors(begin, conn.dialect):
                    driver.execute(begin)
                try:
                    answer = _bounded(conn, driver, time.monotonic() + LOOP_BUDGET, work, args, kwargs)
                    if conn.in_transaction():
                        conn.commit()
                    else:
                        with driver_errors("COMMIT", conn.dialect):
                            driver.commit()
                except BaseException:
                    _roll_back(conn, driver)
                    raise
                return answer
        except Unavailable as error:
            code = _sqlite_code(error)
            if code == _BUSY:
                raise _LockedElsewhere from error
            if code == _INTERRUPTED:
                raise _TooLongForTheLoop from error
            if _lost_connection(error):
                self._drop_here()
            raise

    async def _opened(self, pool: ThreadPoolExecutor) -> None:
        """Opens the event loop's connection, once however many transactions ask at once: on a
        thread, as opening a file may wait on its lock (the pragmas that set it up)."""
        if self._opening is None:
            self._opening = asyncio.get_running_loop().run_in_executor(pool, self._open_here)
        opening = self._opening
        try:
            await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None

    def _open_here(self) -> None:
        with outages_as_unavailable():
            conn = self.engine.connect()
        with self._lock:
            self._connections.append(conn)
        self._here = conn
        self._count(0)  # one more connection open

    def _here_connection(self) -> Connection:
        conn = self._here
        if conn is None:  # closed meanwhile
            raise Unavailable("the database is closed", cause="it is shutting down")
        raw: Any = conn.connection.driver_connection
        if raw is not self._here_raw:  # new, or replaced by the pool after a loss: never wait on a lock
            raw.execute("PRAGMA busy_timeout = 0")
            self._here_raw = raw
        return conn

    def _drop_here(self) -> None:
        conn, self._here, self._here_raw = self._here, None, None
        if conn is not None:
            with self._lock:
                self._connections.remove(conn)
            conn.close()

    async def _on_thread(
        self, pool: ThreadPoolExecutor, write: bool, asked: float, work: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> T:
        def run() -> T:
            if time.monotonic() - asked > self.timeout:
                busy = "it is busy: no database thread came free in time"
                raise Unavailable(f"no database thread came free in {self.timeout} s", cause=busy)
            self._count(+1)
            try:
                return transact()
            except Unavailable as error:
                # A read that met a connection lost meanwhile (a restart, a cut) is tried once more
                # on a new one. A write is not: it may have been committed before the loss.
                if write or not _lost_connection(error):
                    raise
                return transact()
            finally:
                self._count(-1)

        def transact() -> T:
            with outages_as_unavailable():
                conn = self._connection(write)
                with conn.begin():
                    driver = conn.connection.driver_connection
                    return _bounded(conn, driver, asked + self.timeout, work, args, kwargs)

        # The caller's context (its request id, for the log) goes along, as asyncio.to_thread does.
        return await asyncio.get_running_loop().run_in_executor(pool, contextvars.copy_context().run, run)

    def _count(self, change: int) -> None:
        """Reports the transactions running on threads and the connections open, to `observe`
        (those on the event loop end before anything else in the process can look)."""
        with self._lock:
            self._in_use += change
            in_use, open_ = self._in_use, len(self._connections)
        self._observe(in_use, open_)

    def _connection(self, write: bool) -> Connection:
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self.engine.connect()
            if write:
                conn.execution_options(write=True)
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        """Let the threads finish what they started, then close every connection. On PostgreSQL
        `aclose` closes them on their event loop; here they are let go."""
        if not self._sqlite:
            self.engine.dispose(close=False)
            return
        self._writes.shutdown()
        self._reads.shutdown()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._here = self._here_raw = None
        self.engine.dispose()

    async def aclose(self) -> None:
        """`close`, on the event loop that runs the transactions: on PostgreSQL every connection is
        closed there, after the transactions running on it have ended."""
        if not self._sqlite:
            await self._async.dispose()
        self.close()


class _LockedElsewhere(Exception):
    """SQLite said busy: another process holds the lock this transaction needs."""


class _TooLongForTheLoop(Exception):
    """The transaction ran past LOOP_BUDGET on the event loop and was interrupted."""


def _bounded(conn: Connection, driver: Any, deadline: float, work: Callable[..., T], args: Any, kwargs: Any) -> T:
    """`work(conn, ...)`, interrupted by SQLite (SQLITE_INTERRUPT, the transaction rolled back) if
    it is still running at `deadline`; `driver` is `conn`'s sqlite3 connection. The commit that
    follows is never interrupted."""
    driver.set_progress_handler(lambda: time.monotonic() > deadline, PROGRESS_STEPS)
    try:
        return work(conn, *args, **kwargs)
    finally:
        driver.set_progress_handler(None, 0)


def _roll_back(conn: Connection, driver: sqlite3.Connection) -> None:
    """Ends a failed transaction, whoever began it; a rollback that fails too (the connection is
    gone) leaves the first error to tell."""
    with contextlib.suppress(Exception):
        if conn.in_transaction():
            conn.rollback()
        if driver.in_transaction:
            driver.rollback()


def _sqlite_code(error: Unavailable) -> int | None:
    cause = error.__cause__
    if isinstance(cause, exc.DBAPIError) and isinstance(cause.orig, sqlite3.Error):
        return getattr(cause.orig, "sqlite_errorcode", 0) & 0xFF
    return None


def _lost_connection(error: Unavailable) -> bool:
    """Whether `error` came from a connection the driver found broken (SQLAlchemy invalidated it)."""
    cause = error.__cause__
    return isinstance(cause, exc.DBAPIError) and cause.connection_invalidated
