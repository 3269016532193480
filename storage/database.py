"""The database as the asynchronous service sees it: each transaction runs on a thread of this
process's own, so that a slow or locked database holds a thread, never the event loop."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, exc

from storage.engine import outages_as_unavailable
from storage.errors import Unavailable

P = ParamSpec("P")
T = TypeVar("T")


class Database:
    """Runs `work(conn, ...)` in one transaction on a thread of this process, each thread keeping
    one connection for its life (a connection lost on the way is replaced on the thread's next
    transaction).

    There are as many threads as `connections`. On SQLite, writes queue for one writer thread (the
    file takes one writer at a time, and a queue in the process hands over at once where SQLite's
    busy handler would sleep) and reads share the others; on a server database, reads and writes
    share them all.
    A transaction that waited `timeout` seconds for its thread is not started: it raises
    `Unavailable`, and nothing is stored."""

    def __init__(
        self,
        engine: Engine,
        *,
        connections: int,
        timeout: float,
        observe: Callable[[int, int], None] = lambda in_use, open_: None,
    ) -> None:
        self.engine = engine
        self.timeout = timeout
        self._observe = observe
        self._in_use = 0
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        if engine.dialect.name == "sqlite":
            self._reads = ThreadPoolExecutor(max(1, connections - 1), thread_name_prefix="db-read")
            self._writes = ThreadPoolExecutor(1, thread_name_prefix="db-write")
            self.connections = max(1, connections - 1) + 1
        else:
            self._reads = self._writes = ThreadPoolExecutor(connections, thread_name_prefix="db")
            self.connections = connections  # how many connections (and threads) this opens at most

    async def read(self, work: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work`'s answer, from a read-only transaction."""
        return await self._run(self._reads, False, work, *args, **kwargs)

    async def write(self, work: Callable[Concatenate[Connection, P], T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """`work`'s answer, from a transaction that may write; committed before this returns."""
        return await self._run(self._writes, True, work, *args, **kwargs)

    async def _run(
        self, pool: ThreadPoolExecutor, write: bool, work: Callable[..., T], /, *args: Any, **kwargs: Any
    ) -> T:
        queued = time.monotonic()

        def run() -> T:
            if time.monotonic() - queued > self.timeout:
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
                    return work(conn, *args, **kwargs)

        # The caller's context (its request id, for the log) goes along, as asyncio.to_thread does.
        return await asyncio.get_running_loop().run_in_executor(pool, contextvars.copy_context().run, run)

    def _count(self, change: int) -> None:
        """Reports the transactions running and the connections open, to `observe`."""
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
        """Let the threads finish what they started, then close every connection."""
        self._writes.shutdown()
        self._reads.shutdown()
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self.engine.dispose()


def _lost_connection(error: Unavailable) -> bool:
    """Whether `error` came from a connection the driver found broken (SQLAlchemy invalidated it)."""
    cause = error.__cause__
    return isinstance(cause, exc.DBAPIError) and cause.connection_invalidated
