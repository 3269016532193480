"""./scripts/dev bench --pg-ceiling: how many of the service's creates PostgreSQL itself takes per
second, with no web stack in front: the ceiling that docs/scaling.md sets the service's create
rate against. Threads of this process, each on its own psycopg connection, run the service's
create transaction (bench/peers/pg.py's `create`: the names lookup, the sequence INSERT, COMMIT)
back to back; then the INSERT alone in autocommit, the least a create can cost."""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import psycopg

from bench import report
from bench.backends import PostgresBackend
from bench.peers import pg

SESSIONS = 1000
LADDER = (1, 2, 4, 8, 16)
TRANSACTION = "names lookup + INSERT + COMMIT"
INSERT_ALONE = "INSERT alone, autocommit"

Work = Callable[[pg.Connection, int], None]
"""One create on a connection; the int counts this thread's creates, to vary group and activity."""


def create_transaction(conn: pg.Connection, n: int) -> None:
    """The service's create with a server-picked id, exactly as the peers run it."""
    pg.create(conn, group_id=n % 4 + 1, study_activity_id=n % 3 + 1, created_at=datetime.now(UTC), id=None)


def insert_alone(conn: pg.Connection, n: int) -> None:
    """The create's INSERT statement and nothing else, committed by autocommit."""
    values = {"group_id": n % 4 + 1, "study_activity_id": n % 3 + 1, "created_at": datetime.now(UTC)}
    conn.execute(pg.INSERT_PICKED, {**pg.PICKED, **values}).fetchone()


@dataclass
class Result:
    """One level: every create's latency in seconds, over the wall time from start to last stop."""

    label: str
    connections: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantile_ms(self, q: float) -> float:
        """The `q` quantile (0..1) of the latencies, in milliseconds."""
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else 0.0
        return statistics.quantiles(self.latencies, n=1000, method="inclusive")[round(q * 1000) - 1] * 1000


def measure(url: str, work: Work, *, connections: int, seconds: float, label: str, autocommit: bool) -> Result:
    """`work` back to back on `connections` threads for `seconds`; the connections are made
    before the clock starts."""
    result = Result(label, connections)
    lock = threading.Lock()
    conns = [pg.connect(url, autocommit=autocommit) for _ in range(connections)]
    start = threading.Barrier(connections + 1)
    deadline = [0.0]

    def run(conn: pg.Connection) -> None:
        mine: list[float] = []
        start.wait()
        n = 0
        try:
            while time.perf_counter() < deadline[0]:
                began = time.perf_counter()
                work(conn, n)
                mine.append(time.perf_counter() - began)
                n += 1
        except psycopg.Error as error:
            with lock:
                result.errors.append(f"{type(error).__name__}: {error}")
        with lock:
            result.latencies += mine

    threads = [threading.Thread(target=run, args=(conn,)) for conn in conns]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    result.seconds = time.perf_counter() - began
    for conn in conns:
        conn.close()
    return result


def table(results: Sequence[Result], seconds: float) -> report.Table:
    return report.Table(
        f"PostgreSQL ceiling: the service's create, no web stack ({seconds:g} s per row)",
        ["connections", "transaction", "creates/s", "p50 ms", "p99 ms", "errors"],
        [
            [
                str(r.connections),
                r.label,
                f"{r.per_second:.0f}",
                f"{r.quantile_ms(0.5):.2f}",
                f"{r.quantile_ms(0.99):.2f}",
                str(len(r.errors)),
            ]
            for r in results
        ],
        [
            f"Each connection is a thread of one Python process (psycopg, server-side binding, no prepared "
            f"statements), on a database of {SESSIONS:,} sessions; the last row runs at the best connection "
            "count above. The client's threads share the machine's cores with the server.",
        ],
    )


def run(database_url: str, *, seconds: float, ladder: Sequence[int], markdown: bool, say: Callable[[str], None]) -> int:
    """Measure every level of `ladder` and the INSERT alone, print the table; 1 if any create failed."""
    backend = PostgresBackend(database_url)
    results: list[Result] = []
    try:
        url = backend.copy_as(f"bench_ceiling_{SESSIONS}", SESSIONS)
        for connections in ladder:
            backend.reset(url, SESSIONS)
            level = measure(
                url, create_transaction, connections=connections, seconds=seconds, label=TRANSACTION, autocommit=False
            )
            results.append(level)
            say(f"ceiling: {connections:>2} connections, {results[-1].per_second:8.0f} creates/s")
        best = max(results, key=lambda r: r.per_second).connections
        backend.reset(url, SESSIONS)
        results.append(
            measure(url, insert_alone, connections=best, seconds=seconds, label=INSERT_ALONE, autocommit=True)
        )
        say(f"ceiling: {best:>2} connections, {results[-1].per_second:8.0f} INSERTs/s alone")
    finally:
        backend.close()
    print(report.render(table(results, seconds), markdown), flush=True)
    errors = [error for r in results for error in r.errors]
    if errors:
        say(f"FAILED: {len(errors)} connections stopped on an error, the first: {errors[0]}")
        return 1
    return 0
