"""./scripts/dev bench --pg-ceiling: how many of the service's creates PostgreSQL itself takes per
second, with no web stack in front: the ceiling that docs/scaling.md sets the service's create
rate against. Threads of this process, each on its own psycopg connection, run the service's
create transaction (bench/peers/pg.py's `create`: the names lookup, the sequence INSERT, COMMIT)
back to back; then the INSERT alone in autocommit, the least a create can cost."""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from bench import report
from bench.backends import PostgresBackend
from bench.peers import pg, sql

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

    pgbench_tps: float | None = None
    pgbench_latency_ms: float = 0.0
    """pgbench reports its rate and mean latency, not each transaction's."""

    @property
    def per_second(self) -> float:
        if self.pgbench_tps is not None:
            return self.pgbench_tps
        return len(self.latencies) / self.seconds if self.seconds else 0.0

    def quantile_ms(self, q: float) -> float:
        """The `q` quantile (0..1) of the latencies, in milliseconds (pgbench: the mean, for both)."""
        if self.pgbench_tps is not None:
            return self.pgbench_latency_ms
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


PGBENCH = "pgbench (C client, -j 2), the same transaction"
PGBENCH_SCRIPT = """\\set g random(1, 4)
\\set a random(1, 3)
BEGIN;
SELECT groups.name, study_activities.name FROM groups JOIN study_activities ON study_activities.id = :a
  WHERE groups.id = :g;
INSERT INTO study_sessions (id, group_id, study_activity_id, created_at) VALUES (CASE WHEN
  ((SELECT last_value FROM study_sessions_id_seq) < {end}) THEN nextval('study_sessions_id_seq')
  ELSE CAST(1 + floor(random() * {top}) AS BIGINT) END, :g, :a, now()) ON CONFLICT (id) DO NOTHING RETURNING id;
COMMIT;
"""
"""The service's create transaction (pg.NAMES, pg.INSERT_PICKED) for pgbench, values inlined."""


def with_pgbench(url: str, *, connections: int, seconds: float, folder: Path) -> Result | None:
    """The create transaction from pgbench, PostgreSQL's own load tool, written in C: the ceiling
    without the Python client's GIL in the way. None where pgbench is not installed."""
    pgbench = shutil.which("pgbench")
    if pgbench is None:
        return None
    script = folder / "create.sql"
    script.write_text(PGBENCH_SCRIPT.format(end=pg.SEQUENCE_END, top=sql.MAX_ID - 1))
    command = [pgbench, "-n", "-M", "extended", f"-c{connections}", "-j2", f"-T{max(1, round(seconds))}", "-r"]
    done = subprocess.run(  # noqa: S603
        [*command, "-f", str(script), pg.conninfo(url)], capture_output=True, text=True, check=False
    )
    result = Result(PGBENCH, connections, seconds=1.0)
    if done.returncode != 0:
        result.errors.append(done.stderr.strip()[-500:])
        return result
    tps = re.search(r"tps = ([0-9.]+)", done.stdout)
    latency = re.search(r"latency average = ([0-9.]+) ms", done.stdout)
    if tps is None or latency is None:
        result.errors.append(f"pgbench said: {done.stdout[-500:]}")
        return result
    result.pgbench_tps = float(tps.group(1))
    result.pgbench_latency_ms = float(latency.group(1))
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
            f"statements), on a database of {SESSIONS:,} sessions; the rows after the ladder run at its best "
            "connection count. The client shares the machine's cores with the server. pgbench (where "
            "installed) runs the same transaction from C, two threads; its p50 and p99 columns are its mean.",
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
        backend.reset(url, SESSIONS)
        with tempfile.TemporaryDirectory(prefix="pgbench-") as folder:
            c_client = with_pgbench(url, connections=best, seconds=seconds, folder=Path(folder))
        if c_client is not None:
            results.append(c_client)
            say(f"ceiling: {best:>2} connections, {c_client.per_second:8.0f} creates/s from pgbench")
    finally:
        backend.close()
    print(report.render(table(results, seconds), markdown), flush=True)
    errors = [error for r in results for error in r.errors]
    if errors:
        say(f"FAILED: {len(errors)} connections stopped on an error, the first: {errors[0]}")
        return 1
    return 0
