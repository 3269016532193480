"""Production serving (gunicorn -c python:edge.serving app:app) as a separate process: worker
processes that share their metrics, and a SIGTERM that drains the requests in flight."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.conftest import count_sessions
from tests.servers import GUNICORN, processes, service
from tests.test_operations import metric

pytestmark = pytest.mark.live


def test_several_workers_serve_and_their_metrics_are_summed_even_after_one_is_killed(tmp_path: Path, database_url: str):
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999.db").write_bytes(b"a worker of the last run")
    (metrics_dir / "notes.txt").write_text("not the service's")
    env = {"WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with service(tmp_path, database_url, GUNICORN, **env) as (url, server):
        statuses, scrapes = read_groups_200_times_then_scrape(url)
        served = {path.name for path in metrics_dir.glob("counter_*.db")}  # while they run

        workers = set(processes(1, server.pid))
        killed = min(workers)
        os.kill(killed, signal.SIGKILL)  # no hook of its own runs: the master's child_exit must tidy up
        replacement = wait_for_replacement(server.pid, workers)
        deadline = time.monotonic() + 30
        while not (metrics_dir / f"counter_{replacement}.db").exists():  # until the new worker has served
            assert time.monotonic() < deadline, "the replacement worker served nothing"
            httpx.get(f"{url}/api/v1/healthz", headers={"Connection": "close"})
        after_kill = [httpx.get(f"{url}/api/v1/metrics", headers={"Connection": "close"}).text for _ in range(6)]

    assert statuses == [200] * 200
    assert (metrics_dir / "notes.txt").exists(), "only the last run's metric files go at start"
    assert len(served) == 2, f"both workers should have served: {served}"
    assert served <= {path.name for path in metrics_dir.glob("counter_*.db")}, "kept after exit, until the next start"
    for scrape in scrapes:  # whichever worker answers, it sums both
        assert metric(scrape, "http_requests_total", operation="list_groups", status="200") == 200
        assert metric(scrape, "db_connections_max") == 2 * 5
    for scrape in after_kill:  # the killed worker's connections are gone, the counts it made stay
        assert metric(scrape, "db_connections_max") == 2 * 5
        assert metric(scrape, "http_requests_total", operation="list_groups", status="200") == 200


def test_without_a_metrics_folder_given_the_metrics_of_every_worker_are_summed(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
):
    # The folder the master makes must be set before anything in it imports prometheus_client,
    # which picks at import whether it keeps values in memory (one process's) or in the folder.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = {"WORKERS": "2", "DB_POOL_SIZE": "3", "TMPDIR": str(temporary)}
    with service(tmp_path, database_url, GUNICORN, **env) as (url, _):
        statuses, scrapes = read_groups_200_times_then_scrape(url)
        (folder,) = temporary.glob("study-sessions-metrics-*")
        served = {path.name for path in folder.glob("counter_*.db")}

    assert statuses == [200] * 200
    assert len(served) == 2, f"both workers should have served: {served}"
    for scrape in scrapes:  # whichever worker answers, it sums both
        assert metric(scrape, "http_requests_total", operation="list_groups", status="200") == 200
        assert metric(scrape, "db_connections_max") == 2 * 3


def read_groups_200_times_then_scrape(url: str) -> tuple[list[int], list[str]]:
    """200 reads of /groups, 8 at once, then 6 scrapes of /metrics, each on a new connection, so
    that every worker takes some: the reads' statuses and the scrapes."""

    def read_groups(_: int) -> int:
        return httpx.get(f"{url}/api/v1/groups", headers={"Connection": "close"}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(read_groups, range(200)))
    return statuses, [httpx.get(f"{url}/api/v1/metrics", headers={"Connection": "close"}).text for _ in range(6)]


def wait_for_replacement(master: int, before: set[int]) -> int:
    """The worker gunicorn's `master` started in place of the one of `before` (its workers) killed."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = set(processes(1, master))
        if len(workers) == len(before) and len(started := workers - before) == 1:
            return started.pop()
        time.sleep(0.1)
    pytest.fail(f"no worker replaced one of {sorted(before)}")


@contextmanager
def write_lock(backend: str, database_url: str) -> Iterator[Callable[[], None]]:
    """A transaction that keeps every writer waiting, on either backend, until `release()`d."""
    if backend == "sqlite":
        holder = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        done = holder.close  # closing rolls back
    else:
        connection = create_engine(database_url).connect()
        connection.execute(text("LOCK TABLE study_sessions IN EXCLUSIVE MODE"))
        done = connection.close
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            done()

    try:
        yield release
    finally:
        release()


def test_sigterm_finishes_the_requests_in_flight_then_exits(
    tmp_path: Path, backend: str, database_url: str, engine: Engine
):
    env = {"WORKERS": "2", "GRACEFUL_TIMEOUT": "20", "DB_TIMEOUT": "10"}
    with (
        service(tmp_path, database_url, GUNICORN, **env) as (url, server),
        write_lock(backend, database_url) as release,
        ThreadPoolExecutor(8) as pool,
    ):
        body = {"group_id": 1, "study_activity_id": 1}
        posts = [pool.submit(httpx.post, f"{url}/api/v1/study-sessions", json=body, timeout=30) for _ in range(8)]
        time.sleep(1)  # every create is now in flight, waiting for the lock
        server.send_signal(signal.SIGTERM)
        time.sleep(1)
        with pytest.raises(httpx.TransportError):  # a draining server takes no new requests
            httpx.get(f"{url}/api/v1/healthz", timeout=2)
        release()
        answers = [post.result() for post in posts]
        stopped = time.monotonic()
        exit_code = server.wait(timeout=30)
        waited = time.monotonic() - stopped

    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.json()["id"] for a in answers}) == 8
    assert count_sessions(engine) == 8
    assert exit_code == 0
    assert waited < 20


def test_with_the_write_lock_held_elsewhere_creates_wait_and_are_503_while_reads_go_on(
    tmp_path: Path, backend: str, database_url: str, engine: Engine
):
    # The workers run transactions on their event loops: a create that finds the file (SQLite) or
    # the table (PostgreSQL) locked must wait with the loop free, so that both workers go on
    # answering reads, and end in a 503 at DB_TIMEOUT (SQLite's retries, PostgreSQL's statement
    # timeout).
    # DB_TIMEOUT is long, so that a read held up behind a create (up to DB_TIMEOUT) stands well
    # apart from one slowed by a busy machine (half a second seen in a loaded CI run).
    with service(tmp_path, database_url, GUNICORN, WORKERS="2", DB_TIMEOUT="4") as (url, _server):
        first = httpx.post(f"{url}/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 1}).json()
        # More creates than a worker has connections (DB_POOL_SIZE, 5): on PostgreSQL each waits
        # on the lock with a connection, so at least one worker has more of them than connections.
        with write_lock(backend, database_url), ThreadPoolExecutor(14) as pool:
            started = time.monotonic()
            posts = [
                pool.submit(httpx.post, f"{url}/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 1})
                for _ in range(12)
            ]
            reads = []
            while time.monotonic() - started < 1.5:
                began = time.monotonic()
                read = httpx.get(f"{url}/api/v1/study-sessions/{first['id']}", timeout=10)
                reads.append((read.status_code, time.monotonic() - began))
            creates = [post.result() for post in posts]
            waited = time.monotonic() - started

    assert {status for status, _ in reads} == {200}
    assert max(seconds for _, seconds in reads) < 2, reads
    assert [c.status_code for c in creates] == [503] * 12
    assert all(c.headers["content-type"] == "application/problem+json" for c in creates)
    assert waited < 4 + 2
    assert count_sessions(engine) == 1


def test_the_metrics_folder_it_makes_outlives_a_worker_and_goes_with_the_master(tmp_path: Path, database_url: str):
    # Without PROMETHEUS_MULTIPROC_DIR the master makes a folder; a worker that exits (replaced,
    # or stopped) must not take it with it, and the master removes it when it stops.
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    with service(tmp_path, database_url, GUNICORN, WORKERS="2", TMPDIR=str(temporary)) as (url, server):
        (folder,) = temporary.glob("study-sessions-metrics-*")
        workers = sorted(processes(1, server.pid))
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGTERM)
        wait_for_replacement(server.pid, set(workers))

        assert folder.is_dir(), "a worker's exit removed the metrics folder"
        assert httpx.get(f"{url}/api/v1/groups").status_code == 200
        assert httpx.get(f"{url}/api/v1/metrics").status_code == 200
        server.terminate()
        server.wait(timeout=60)

    assert not folder.exists()


@pytest.mark.backends("sqlite")
def test_two_instances_of_one_user_share_no_control_socket(tmp_path: Path, database_url: str):
    # gunicorn's default control socket is one path per user ($XDG_RUNTIME_DIR or ~/.gunicorn):
    # a second instance would take it over, and the first to exit delete it.
    home = tmp_path / "home"
    home.mkdir()
    env = {"HOME": str(home), "XDG_RUNTIME_DIR": str(home), "WORKERS": "1"}
    with (
        service(tmp_path, database_url, GUNICORN, **env) as (first, _),
        service(tmp_path, database_url, GUNICORN, **env) as (second, _),
    ):
        answers = [httpx.get(f"{url}/api/v1/healthz").status_code for url in (first, second)]
        sockets = [path for path in home.rglob("*") if path.is_socket()]

    assert answers == [200, 200]
    assert sockets == []
