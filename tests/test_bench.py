"""The benchmark harness: its peers run the service's own SQL, and ./scripts/dev bench --smoke
runs every app. No timing is asserted anywhere."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event
from starlette.testclient import TestClient

from app import create_app
from bench import profile
from bench.backends import PostgresBackend, fill, words_by_group
from bench.peers import pg, sql
from edge.settings import Settings
from storage import migrate
from storage.engine import make_engine
from tests.conftest import POSTGRESQL_URL

ROOT = Path(__file__).resolve().parent.parent
CREATED_AT = "2026-11-27T09:30:00+01:00"
SMOKE_APPS = ("service", "bare", "FastAPI")
SMOKE_WORKLOADS = ("create", "get")


def prefilled(path: Path, sessions: int) -> None:
    engine = make_engine(f"sqlite:///{path}")
    migrate.upgrade(engine)
    migrate.seed(engine)
    engine.dispose()
    conn = sql.connect(str(path))
    fill(conn, sessions)
    conn.close()


def service_statements(path: Path) -> tuple[list[str], set[str]]:
    """What the service runs for a create (with and without an id), a read, an unknown id and
    two pages: the statements in order, and the pragmas each connection starts with."""
    statements: list[str] = []
    settings = Settings(database_url=f"sqlite:///{path}")
    engine = make_engine(settings.database_url)

    @event.listens_for(engine, "connect", insert=True)
    def trace(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.set_trace_callback(statements.append)

    with TestClient(create_app(settings, engine)) as client:
        body = {"group_id": 2, "study_activity_id": 3, "created_at": CREATED_AT}
        assert client.post("/api/v1/study-sessions", json=body).status_code == 201
        assert client.post("/api/v1/study-sessions", json={**body, "id": 77}).status_code == 201
        assert client.post("/api/v1/study-sessions", json={**body, "id": 77}).status_code == 409
        assert client.get("/api/v1/study-sessions/3").status_code == 200
        assert client.get("/api/v1/study-sessions/12345").status_code == 404
        assert client.get("/api/v1/study-sessions?page=1&per_page=10").status_code == 200
        assert client.get("/api/v1/study-sessions?page=2&per_page=3").status_code == 200
        word, other = review_words(path)
        assert (
            client.post("/api/v1/study-sessions/2/reviews", json={"word_id": word, "correct": True}).status_code == 201
        )
        assert (
            client.post("/api/v1/study-sessions/2/reviews", json={"word_id": other, "correct": False}).status_code
            == 422
        )
        assert (
            client.post("/api/v1/study-sessions/12345/reviews", json={"word_id": word, "correct": True}).status_code
            == 404
        )
    engine.dispose()
    # SQLAlchemy reads the default isolation level once, on an engine's first connection. The
    # event loop's connection waits for a lock with asyncio sleeps, not SQLite's busy handler
    # (storage.database); the peers keep the busy timeout their users would.
    pragmas = {s for s in statements if s.startswith("PRAGMA")} - {"PRAGMA read_uncommitted", "PRAGMA busy_timeout = 0"}
    return [s for s in statements if not s.startswith("PRAGMA")], pragmas


def peer_statements(path: Path) -> list[str]:
    statements: list[str] = []
    conn = sql.connect(str(path))
    conn.set_trace_callback(statements.append)
    created_at = datetime.fromisoformat(CREATED_AT)
    sql.create(conn, group_id=2, study_activity_id=3, created_at=created_at, id=None)
    sql.create(conn, group_id=2, study_activity_id=3, created_at=created_at, id=77)
    with pytest.raises(sql.Duplicate):
        sql.create(conn, group_id=2, study_activity_id=3, created_at=created_at, id=77)
    sql.get(conn, 3)
    with pytest.raises(sql.Missing):
        sql.get(conn, 12345)
    sql.list_page(conn, page=1, per_page=10)
    sql.list_page(conn, page=2, per_page=3)
    word, other = review_words(path)
    sql.review(conn, study_session_id=2, word_id=word, correct=True)
    with pytest.raises(sql.NotInGroup):
        sql.review(conn, study_session_id=2, word_id=other, correct=False)
    with pytest.raises(sql.Missing):
        sql.review(conn, study_session_id=12345, word_id=word, correct=True)
    conn.close()
    return statements


def review_words(path: Path) -> tuple[int, int]:
    """A word of session 2's group, and a word of another group."""
    conn = sql.connect(str(path))
    groups = words_by_group(conn)
    group = conn.execute("SELECT group_id FROM study_sessions WHERE id = 2").fetchone()[0]
    conn.close()
    return groups[group][0], next(w for g, ws in groups.items() if g != group for w in ws if w not in groups[group])


def same_instants(statements: list[str]) -> list[str]:
    """The statements with the instant a review is stored at (the clock's) made the same."""
    return [
        re.sub(r"'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}'", "'<now>'", s) if "review_items" in s else s
        for s in statements
    ]


def test_the_peers_run_the_statements_the_service_runs(tmp_path: Path):
    prefilled(tmp_path / "service.db", 5)
    prefilled(tmp_path / "peer.db", 5)

    statements, pragmas = service_statements(tmp_path / "service.db")

    assert "BEGIN IMMEDIATE" in statements
    assert any("LEFT OUTER JOIN review_counts" in s for s in statements)
    assert any(s.startswith("INSERT INTO review_items") for s in statements)
    assert same_instants(peer_statements(tmp_path / "peer.db")) == same_instants(statements)
    assert pragmas == set(sql.PRAGMAS)


@pytest.mark.live
def test_the_smoke_benchmark_runs_every_app_and_workload_without_errors():
    if shutil.which("wrk") is None and os.geteuid() != 0:
        skip_or_fail_in_ci("wrk is not installed, and only root can install it")
    done = subprocess.run(
        [ROOT / "scripts" / "dev", "bench", "--smoke"], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = smoke_rows(done.stdout)
    for workload in SMOKE_WORKLOADS:
        for app in SMOKE_APPS:
            assert rows[workload, app]["non-2xx"] == "0", done.stdout


@pytest.mark.live
def test_the_smoke_benchmark_runs_on_postgresql(postgresql_template: str):
    """The same smoke run with DATABASE_URL naming PostgreSQL (skipped where conftest skips its
    PostgreSQL half): the peers on bench/peers/pg.py agree with the service and nothing fails."""
    if shutil.which("wrk") is None and os.geteuid() != 0:
        skip_or_fail_in_ci("wrk is not installed, and only root can install it")
    done = subprocess.run(
        [ROOT / "scripts" / "dev", "bench", "--smoke", "--workloads", "create,review,get,list"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DATABASE_URL": POSTGRESQL_URL},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "\npostgresql, 1,000 sessions, 1 worker, 16 connections: create\n" in done.stdout
    rows = smoke_rows(done.stdout)
    for workload in ("create", "review", "get", "list"):
        for app in SMOKE_APPS:
            assert rows[workload, app]["non-2xx"] == "0", done.stdout


def smoke_rows(output: str) -> dict[tuple[str, str], dict[str, str]]:
    """The per-setting tables' rows, by (workload, app), each as {column: cell}."""
    rows: dict[tuple[str, str], dict[str, str]] = {}
    lines = output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(("sqlite, ", "postgresql, ")) and i + 1 < len(lines):
            workload = line.rsplit(": ", 1)[1]
            columns = [c.strip() for c in lines[i + 1].split("|")]
            for row in lines[i + 3 :]:
                if not row.strip():
                    break
                cells = dict(zip(columns, (c.strip() for c in row.split("|")), strict=True))
                rows[workload, cells["app"]] = cells
    return rows


@pytest.fixture
def postgresql_pair(postgresql_template: str) -> Iterator[tuple[str, str]]:
    """Two copies of a PostgreSQL database of 5 sessions, made as the benchmark makes them."""
    backend = PostgresBackend(POSTGRESQL_URL)
    suffix = uuid.uuid4().hex[:8]
    try:
        yield backend.copy_as(f"bench_test_service_{suffix}", 5), backend.copy_as(f"bench_test_peer_{suffix}", 5)
    finally:
        backend.close()


class Traced:
    """A psycopg connection that notes each statement with its parameters, and each COMMIT and ROLLBACK."""

    def __init__(self, conn: pg.Connection, log: list[tuple[Any, ...]]) -> None:
        self.conn = conn
        self.log = log

    def execute(self, query: str, params: dict[str, Any]) -> Any:
        self.log.append((query, params))
        return self.conn.execute(query, params)

    def commit(self) -> None:
        self.log.append(("COMMIT",))
        self.conn.commit()

    def rollback(self) -> None:
        self.log.append(("ROLLBACK",))
        self.conn.rollback()

    @property
    def autocommit(self) -> bool:
        return self.conn.autocommit

    @autocommit.setter
    def autocommit(self, value: bool) -> None:
        self.conn.autocommit = value


def postgresql_words(url: str) -> tuple[int, int]:
    """A word of session 2's group, and a word of another group."""
    with pg.connect(url) as conn:
        groups = words_by_group(conn)
        found = conn.execute("SELECT group_id FROM study_sessions WHERE id = 2").fetchone()
    assert found is not None
    group = found[0]
    return groups[group][0], next(w for g, ws in groups.items() if g != group for w in ws if w not in groups[group])


def service_statements_on_postgresql(url: str) -> list[tuple[Any, ...]]:
    """What the service sends PostgreSQL for the requests of `service_statements`, from its
    first request on: statements with their parameters, COMMITs and ROLLBACKs (none for a read in
    autocommit: the driver sends none)."""
    log: list[tuple[Any, ...]] = []
    settings = Settings(database_url=url, rate_limit_write="off", rate_limit_read="off")
    engine = make_engine(url)
    word, other = postgresql_words(url)

    def ended(word: str) -> Callable[[Connection], None]:
        def note(conn: Connection) -> None:
            if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
                log.append((word,))

        return note

    # On every engine: the service's transactions run on the asynchronous engine it makes of `engine`.
    listeners: list[tuple[str, Callable[..., None]]] = [
        ("before_cursor_execute", lambda *a: log.append((a[2], a[3]))),
        ("commit", ended("COMMIT")),
        ("rollback", ended("ROLLBACK")),
    ]
    for name, listener in listeners:
        event.listen(Engine, name, listener)
    try:
        with TestClient(create_app(settings, engine)) as client:
            del log[:]
            body = {"group_id": 2, "study_activity_id": 3, "created_at": CREATED_AT}
            assert client.post("/api/v1/study-sessions", json=body).status_code == 201
            assert client.post("/api/v1/study-sessions", json={**body, "id": 77}).status_code == 201
            assert client.post("/api/v1/study-sessions", json={**body, "id": 77}).status_code == 409
            assert client.post("/api/v1/study-sessions", json={**body, "group_id": 9}).status_code == 422
            assert client.get("/api/v1/study-sessions/3").status_code == 200
            assert client.get("/api/v1/study-sessions/12345").status_code == 404
            assert client.get("/api/v1/study-sessions?page=1&per_page=10").status_code == 200
            assert client.get("/api/v1/study-sessions?page=2&per_page=3").status_code == 200
            review = "/api/v1/study-sessions/2/reviews"
            assert client.post(review, json={"word_id": word, "correct": True}).status_code == 201
            assert client.post(review, json={"word_id": other, "correct": False}).status_code == 422
            missing = "/api/v1/study-sessions/12345/reviews"
            assert client.post(missing, json={"word_id": word, "correct": True}).status_code == 404
    finally:
        for name, listener in listeners:
            event.remove(Engine, name, listener)
        engine.dispose()
    return log


def peer_statements_on_postgresql(url: str) -> list[tuple[Any, ...]]:
    log: list[tuple[Any, ...]] = []
    word, other = postgresql_words(url)
    created_at = datetime.fromisoformat(CREATED_AT).astimezone(UTC)
    with pg.connect(url) as plain:
        conn: Any = Traced(plain, log)
        pg.create(conn, group_id=2, study_activity_id=3, created_at=created_at, id=None)
        pg.create(conn, group_id=2, study_activity_id=3, created_at=created_at, id=77)
        with pytest.raises(sql.Duplicate):
            pg.create(conn, group_id=2, study_activity_id=3, created_at=created_at, id=77)
        with pytest.raises(sql.Unknown):
            pg.create(conn, group_id=9, study_activity_id=3, created_at=created_at, id=None)
        pg.get(conn, 3)
        with pytest.raises(sql.Missing):
            pg.get(conn, 12345)
        pg.list_page(conn, page=1, per_page=10)
        pg.list_page(conn, page=2, per_page=3)
        pg.review(conn, study_session_id=2, word_id=word, correct=True)
        with pytest.raises(sql.NotInGroup):
            pg.review(conn, study_session_id=2, word_id=other, correct=False)
        with pytest.raises(sql.Missing):
            pg.review(conn, study_session_id=12345, word_id=word, correct=True)
    return log


def same_now(log: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The log with the instant a review is stored at (the clock's) made the same."""
    return [
        (entry[0], {**entry[1], "now": "<now>"}) if len(entry) == 2 and "now" in entry[1] else entry for entry in log
    ]


def test_the_postgresql_peers_run_the_statements_the_service_runs(postgresql_pair: tuple[str, str]):
    service_url, peer_url = postgresql_pair

    statements = service_statements_on_postgresql(service_url)

    assert any("nextval('study_sessions_id_seq')" in entry[0] for entry in statements)
    assert ("ROLLBACK",) in statements
    assert same_now(peer_statements_on_postgresql(peer_url)) == same_now(statements)


def skip_or_fail_in_ci(why: str) -> None:
    """A test that cannot run here is skipped, except in CI, where it must run."""
    if os.environ.get("CI"):
        pytest.fail(f"needed in CI: {why}")
    pytest.skip(why)


@pytest.mark.parametrize(
    ("stack", "layer"),
    [
        ("run (uvicorn/server.py:1);__call__ (connexion/middleware/main.py:2);dumps (json/__init__.py:3)", "JSON"),
        (
            "run (uvicorn/server.py:1);http (edge/middleware/request_log.py:2);get (starlette/datastructures.py:3)",
            "Starlette",
        ),
        ("run (uvicorn/server.py:1);read (storage/database.py:2);execute (sqlalchemy/engine/base.py:3)", "SQLAlchemy"),
        ("run (uvicorn/server.py:1);http (edge/middleware/request_log.py:2)", "the service: edge/"),
        ("run (uvicorn/server.py:1);collect (<frozen gc>)", "uvicorn and httptools"),
        ("run (uvicorn/server.py:1);hit (limits/aio/strategies.py:2)", "limits (rate limits)"),
        ("main (<frozen runpy>:1)", "other (the standard library, gc)"),
    ],
)
def test_the_profile_files_a_sample_under_its_innermost_layer(stack: str, layer: str):
    assert profile.layer_of(stack) == layer
