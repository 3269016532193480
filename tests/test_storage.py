"""The storage layer on its own, against a real SQLite file: no HTTP."""

from __future__ import annotations

import asyncio
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    delete,
    event,
    exc,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.sql import Executable
from starlette.testclient import TestClient

from app import create_app
from edge.settings import Settings
from storage import migrate, schema, study_sessions
from storage.compiled import Compiled
from storage.database import Database
from storage.engine import make_engine, transaction
from storage.errors import Duplicate, NotFound, Unavailable, Unprocessable
from storage.pages import Page
from storage.schema import groups, metadata, study_activities
from tests.conftest import POSTGRESQL_URL, admin_engine, count_sessions, drop_database

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def create(conn: Connection) -> int:
    """A new session's id: the write the transaction tests make."""
    return study_sessions.create(conn, group_id=1, study_activity_id=1, created_at=NOW).id


T = TypeVar("T")


def test_the_migrations_build_exactly_the_declared_schema(engine: Engine):
    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), metadata)

    assert differences == []


@pytest.mark.backends("sqlite")
def test_the_sqlite_file_is_durable_and_enforces_foreign_keys(engine: Engine):
    with engine.connect() as conn:
        pragmas = {
            name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
            for name in ("journal_mode", "synchronous", "foreign_keys")
        }

    assert pragmas == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}


def test_migrating_and_seeding_again_changes_nothing(engine: Engine):
    with transaction(engine, write=True) as conn:
        conn.execute(update(groups).where(groups.c.id == 1).values(name="Renamed"))

    migrate.upgrade(engine)
    migrate.seed(engine)

    with engine.connect() as conn:
        names = dict(conn.execute(select(groups.c.id, groups.c.name)).all())
        activities = conn.execute(select(study_activities.c.id, study_activities.c.name)).all()
    assert names == {1: "Renamed", 2: "Core Adjectives", 3: "Food and Drink", 4: "Travel Phrases"}
    assert activities == [(1, "Typing Tutor"), (2, "Flashcards"), (3, "Sentence Builder")]


def test_create_then_get_round_trips_in_utc(engine: Engine):
    started = datetime(2026, 1, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))
    with transaction(engine, write=True) as conn:
        created = study_sessions.create(conn, group_id=1, study_activity_id=2, created_at=started)
    with transaction(engine) as conn:
        fetched = study_sessions.get(conn, created.id)

    assert fetched == created
    assert fetched.created_at == started and fetched.created_at.tzinfo == UTC


def test_create_refuses_a_taken_id_and_unknown_references_storing_nothing(engine: Engine):
    with transaction(engine, write=True) as conn:
        study_sessions.create(conn, id=5, group_id=1, study_activity_id=1, created_at=NOW)

    with pytest.raises(Duplicate) as duplicate, transaction(engine, write=True) as conn:
        study_sessions.create(conn, id=5, group_id=1, study_activity_id=1, created_at=NOW)
    with pytest.raises(Unprocessable) as unknown, transaction(engine, write=True) as conn:
        study_sessions.create(conn, group_id=404, study_activity_id=405, created_at=NOW)

    assert duplicate.value.existing_id == 5
    assert [v.pointer for v in unknown.value.violations] == ["/group_id", "/study_activity_id"]
    assert count_sessions(engine) == 1


def test_get_of_a_missing_id_raises_not_found(engine: Engine):
    with pytest.raises(NotFound), transaction(engine) as conn:
        study_sessions.get(conn, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T12:00:00Z", NOW),
        ("2026-11-27T13:30:00+01:30", NOW),
        ("2026-11-27T12:05:00Z", NOW + timedelta(minutes=5)),
        ("2026-11-27T12:00:00.123456789Z", NOW + timedelta(microseconds=123456)),
    ],
)
def test_parse_created_at_gives_utc(text: str, expected: datetime):
    assert study_sessions.parse_created_at(text, now=NOW) == expected


@pytest.fixture
def server_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time zone is UTC+9 for the test."""
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_parse_created_at_gives_utc_whatever_the_servers_time_zone(server_in_tokyo: None):
    parsed = study_sessions.parse_created_at("2026-11-27T13:30:00+01:30", now=NOW)

    assert (parsed, parsed.utcoffset()) == (NOW, timedelta(0))


def test_a_stored_instant_reads_back_in_utc_whatever_the_time_zones(engine: Engine, server_in_tokyo: None):
    with transaction(engine, write=True) as conn:
        if conn.dialect.name == "postgresql":  # psycopg reads timestamptz in the session's zone
            conn.execute(text("SET LOCAL TIME ZONE 'America/New_York'"))
        created = study_sessions.create(conn, group_id=1, study_activity_id=1, created_at=NOW)
        read = study_sessions.get(conn, created.id).created_at

    assert (read, read.utcoffset()) == (NOW, timedelta(0))


@pytest.mark.parametrize(
    "text", ["2026-11-27T12:05:01Z", "9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "0001-01-01T23:59:59Z"]
)
def test_parse_created_at_refuses_the_future_and_unrepresentable_instants(text: str):
    with pytest.raises(Unprocessable) as refused:
        study_sessions.parse_created_at(text, now=NOW)

    assert refused.value.violations[0].pointer == "/created_at"


@pytest.mark.parametrize(("total", "pages"), [(0, 0), (1, 1), (10, 1), (11, 2), (100, 10)])
def test_a_page_counts_the_pages_of_the_whole_list(total: int, pages: int):
    assert Page([], total, 1, 10).total_pages == pages


def test_an_unreachable_database_raises_unavailable(tmp_path):
    (tmp_path / "file").write_text("")
    engine = make_engine(f"sqlite:///{tmp_path}/file/db.sqlite", busy_timeout=0.1)

    with pytest.raises(Unavailable), transaction(engine) as conn:
        conn.execute(select(groups))


def held_by_another_process(settings: Settings, *, exclusive: bool = False) -> sqlite3.Connection:
    """A connection of its own to the SQLite file, holding its write lock (`exclusive`: every lock,
    so that not even a new connection can read it) until the caller rolls it back or closes it."""
    holder = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None)
    if exclusive:
        holder.execute("PRAGMA locking_mode = EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE groups SET name = name")  # a write takes the lock in WAL mode
    else:
        holder.execute("BEGIN IMMEDIATE")
    return holder


def unavailable_read(engine: Engine, statement: Executable, release: Callable[[], None]) -> tuple[Unavailable, float]:
    """A read of `statement` on a thread of its own, which must raise `Unavailable` within 10 s:
    that error and the seconds it took. `release` then lets a read still waiting end."""

    def read() -> None:
        with transaction(engine) as conn:
            conn.execute(statement)

    pool = ThreadPoolExecutor(1)
    try:
        started = time.monotonic()
        reading = pool.submit(read)
        with pytest.raises(Unavailable) as raised:
            reading.result(timeout=10)
        return raised.value, time.monotonic() - started
    finally:
        release()
        pool.shutdown()
        engine.dispose()


def test_a_database_server_that_takes_the_connection_but_never_answers_is_unavailable_within_the_timeout():
    # A server that hangs (a host gone mid-handshake, a proxy with nothing behind it): connecting
    # is bounded by busy_timeout, not left to wait for ever with the request behind it.
    listener = socket.create_server(("127.0.0.1", 0))  # the kernel completes the handshake; nothing answers
    port = listener.getsockname()[1]
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{port}/test", busy_timeout=1)

    # Closing the listener resets the connection a read still waits on, so that it ends.
    error, took = unavailable_read(engine, select(groups), release=listener.close)

    assert error.cause == "its server cannot be reached, or the connection to it was lost"
    assert took < 5


def test_a_connection_asked_for_past_the_pool_waits_the_busy_timeout_then_is_unavailable(settings: Settings):
    # The pool is the bound on what a process opens (DB_POOL_SIZE; PostgreSQL's max_connections is
    # shared by every host): one more connection waits busy_timeout for one to come free, then 503.
    engine = make_engine(settings.database_url, busy_timeout=0.5, pool_size=3)
    held = [engine.connect() for _ in range(3)]

    def release() -> None:  # a read still waiting for one takes it, and ends
        for conn in held:
            conn.close()

    error, took = unavailable_read(engine, select(literal(1)), release=release)

    assert error.cause == "it is busy: no connection came free in time"
    assert 0.5 <= took < 3


def test_a_failed_statements_error_names_the_statement_never_a_clients_values(engine: Engine):
    # What a 500's log line says: the SQL that failed, without the values bound to it.
    with pytest.raises(exc.DBAPIError) as raised, transaction(engine) as conn:
        conn.execute(text("SELECT name FROM no_such_table WHERE name = :name"), {"name": "a client's secret"})

    assert "SELECT name FROM no_such_table" in str(raised.value)
    assert "a client's secret" not in str(raised.value)


def test_concurrent_writers_each_get_their_own_id(settings):
    # Writers queue on BEGIN IMMEDIATE within the busy timeout instead of failing or colliding.
    engine = make_engine(settings.database_url, busy_timeout=10)
    migrate.upgrade(engine)
    migrate.seed(engine)

    def create_ten(_: int) -> list[int]:
        ids = []
        for _ in range(10):
            with transaction(engine, write=True) as conn:
                ids.append(study_sessions.create(conn, group_id=1, study_activity_id=1, created_at=NOW).id)
        return ids

    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = [i for batch in pool.map(create_ten, range(8)) for i in batch]

    assert sorted(ids) == list(range(1, 81))
    assert count_sessions(engine) == 80
    engine.dispose()


@pytest.mark.backends("sqlite")
def test_an_error_sqlite3_raises_itself_is_a_bug_that_goes_on_as_it_is_not_an_outage(engine: Engine):
    # sqlite3's own refusals (a wrong number of bindings) have no result code: the log of the 500
    # must name them, not an error of ours in telling outages apart.
    with pytest.raises(exc.ProgrammingError) as raised, transaction(engine) as conn:
        conn.exec_driver_sql("SELECT ?", ())

    assert "Incorrect number of bindings" in str(raised.value)


@pytest.mark.backends("sqlite")
def test_more_writes_at_once_than_connections_queue_for_the_one_writer_and_all_commit(
    settings: Settings, engine: Engine
):
    db = Database(make_engine(settings.database_url, busy_timeout=0.2, pool_size=2), connections=2, timeout=5)

    def create_slowly(conn: Connection) -> int:
        time.sleep(0.03)
        return study_sessions.create(conn, group_id=1, study_activity_id=1, created_at=NOW).id

    async def six_at_once() -> list[int]:
        return await asyncio.gather(*(db.write(create_slowly) for _ in range(6)))

    try:
        ids = asyncio.run(six_at_once())
    finally:
        db.close()

    assert sorted(ids) == list(range(1, 7))
    assert count_sessions(engine) == 6


@pytest.mark.backends("sqlite")
def test_a_read_of_a_database_locked_past_the_timeout_is_tried_once_then_unavailable(
    settings: Settings, engine: Engine
):
    # Only a connection the driver found broken earns a read a second try: a lock is waited out
    # once, or a client would wait twice DB_TIMEOUT for its 503.
    engine.dispose()  # in WAL mode, a lock that shuts out readers needs every other connection closed
    holder = held_by_another_process(settings, exclusive=True)
    db = Database(make_engine(settings.database_url, busy_timeout=0.1), connections=2, timeout=5)
    tries = []
    event.listen(db.engine, "do_connect", lambda *_: tries.append(1))
    try:
        with pytest.raises(Unavailable) as raised:
            asyncio.run(db.read(migrate.revision))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        db.close()

    assert raised.value.cause == "it is busy: locked by another writer"
    assert tries == [1]


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("long", [False, True], ids=["on the loop", "too long for the loop, on its thread"])
def test_a_write_holds_the_write_lock_from_its_start_so_another_processs_write_waits_its_turn(
    settings: Settings, engine: Engine, long: bool
):
    # Two workers on one file. Had `first` begun as a reader, the other's commit after its read
    # would make its own write fail at once (SQLITE_BUSY, a 503) instead of waiting its turn.
    # A long one is stopped on the event loop while it counts, before it reads, and run again on
    # the writer thread, whose connection must begin it as a writer too.
    first, other = (
        Database(make_engine(settings.database_url, busy_timeout=5), connections=2, timeout=5) for _ in range(2)
    )
    ids = []

    def other_creates() -> None:
        ids.append(asyncio.run(other.write(create)))

    def read_then_create(conn: Connection) -> int:
        if long:
            counting_to(200_000)(conn)  # ~0.1 s: past LOOP_BUDGET
        conn.execute(select(groups)).all()
        meanwhile.start()
        meanwhile.join(timeout=0.3)  # it waits for the write lock until this transaction commits
        return create(conn)

    meanwhile = threading.Thread(target=other_creates)
    try:
        ids.append(asyncio.run(first.write(read_then_create)))
        meanwhile.join()
    finally:
        first.close()
        other.close()

    assert sorted(ids) == [1, 2]
    assert count_sessions(engine) == 2


def test_a_compiled_statement_answers_and_fails_as_sqlalchemys_execute_does(engine: Engine, backend: str):
    sessions = schema.study_sessions
    read = Compiled(select(sessions, literal(7).label("seven")).where(sessions.c.id == bindparam("id")))
    write = Compiled(insert(sessions).returning(sessions.c.id, sessions.c.created_at))
    row = {"id": 1, "group_id": 1, "study_activity_id": 2, "created_at": NOW + timedelta(microseconds=7)}

    with transaction(engine, write=True) as conn:
        written = write.first(conn, row)
        assert written is not None
        answered, expected = read.all(conn, {"id": written[0]}), conn.execute(read.statement, {"id": written[0]}).all()
        stored = conn.exec_driver_sql("SELECT created_at FROM study_sessions").scalar()
    with pytest.raises(exc.IntegrityError) as compiled_error, transaction(engine, write=True) as conn:
        write.first(conn, row)
    with pytest.raises(exc.IntegrityError) as sqlalchemy_error, transaction(engine, write=True) as conn:
        conn.execute(write.statement, row)
    with pytest.raises(ValueError, match="aware datetimes only"), transaction(engine, write=True) as conn:
        write.first(conn, {**row, "id": 2, "created_at": datetime(2026, 11, 27, 12)})  # the column type's own check

    assert tuple(written) == (1, NOW + timedelta(microseconds=7))
    assert [tuple(r) for r in answered] == [tuple(r) for r in expected] == [(1, 1, 2, row["created_at"], 7)]
    assert answered[0][3].tzinfo == UTC
    if backend == "sqlite":
        assert stored == "2026-11-27 12:00:00.000007"  # as SQLAlchemy writes it: text that sorts as time does
    else:
        assert stored == row["created_at"]
    assert str(compiled_error.value.orig) == str(sqlalchemy_error.value.orig)
    # As a 500's log line names it: the SQL too, and never the values bound to it.
    assert str(compiled_error.value) == str(sqlalchemy_error.value)
    assert "parameters hidden" in str(compiled_error.value)


@pytest.mark.backends("postgresql")
def test_a_compiled_statement_tells_before_cursor_execute_listeners_as_sqlalchemys_execute_does(engine: Engine):
    # What tracing listens to (and the benchmark's statements test): the connection, the driver's
    # cursor, the SQL, its parameters. On SQLite a compiled statement is the driver's, traced there.
    read = Compiled(select(groups.c.name).where(groups.c.id == bindparam("id")))
    told: list[tuple[object, ...]] = []

    def listener(
        conn: Connection, cursor: object, statement: str, parameters: object, _context: object, many: bool
    ) -> None:
        told.append((conn, type(cursor), statement, parameters, many))

    event.listen(engine, "before_cursor_execute", listener)
    try:
        with engine.connect() as conn:
            read.all(conn, {"id": 1})
            conn.execute(read.statement, {"id": 1}).all()
    finally:
        event.remove(engine, "before_cursor_execute", listener)

    (compiled_conn, *compiled), (sqlalchemy_conn, *sqlalchemy) = told
    assert compiled_conn is sqlalchemy_conn is conn
    assert compiled == sqlalchemy


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("fails", [False, True], ids=["commits", "fails"])
def test_a_loop_transaction_of_compiled_and_sqlalchemy_statements_is_one_and_leaves_the_file_unlocked(
    settings: Settings, engine: Engine, fails: bool
):
    db = Database(make_engine(settings.database_url, busy_timeout=5), connections=3, timeout=5)

    def create_two(conn: Connection) -> None:
        study_sessions.create(conn, id=1, group_id=1, study_activity_id=1, created_at=NOW)  # compiled
        conn.execute(insert(schema.study_sessions).values(id=2, group_id=1, study_activity_id=1, created_at=NOW))
        if fails:
            raise Unprocessable([])

    try:
        if fails:
            with pytest.raises(Unprocessable):
                asyncio.run(db.write(create_two))
        else:
            asyncio.run(db.write(create_two))
        other = sqlite3.connect(settings.database_url.removeprefix("sqlite:///"), isolation_level=None, timeout=0)
        other.execute("BEGIN IMMEDIATE")  # at once: no transaction of the loop's is left holding the lock
        other.rollback()
        other.close()
        again = asyncio.run(db.read(study_sessions.list_page, page=1, per_page=10)).total
    finally:
        db.close()

    assert count_sessions(engine) == again == (0 if fails else 2)


def counting_to(n: int) -> Callable[[Connection], int]:
    """A transaction's work that keeps SQLite busy for as long as counting to `n` takes."""

    def count(conn: Connection) -> int:
        counted = "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < :n) SELECT count(*) FROM c"
        return int(conn.execute(text(counted), {"n": n}).scalar_one())

    return count


def with_the_loops_longest_stall(work: Callable[[], Awaitable[T]]) -> tuple[T | BaseException, float, float]:
    """What `work()` answered (or raised), how long it took, and the longest the event loop went
    without running anything else meanwhile (a task that wakes every 5 ms measures it)."""

    async def measured() -> tuple[T | BaseException, float, float]:
        stalls = [0.0]

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.005)
                stalls.append(time.monotonic() - last - 0.005)
                last = time.monotonic()

        ticking = asyncio.create_task(tick())
        await asyncio.sleep(0.02)
        started = time.monotonic()
        try:
            answer: T | BaseException = await work()
        except Exception as error:  # noqa: BLE001 - the caller asserts on it
            answer = error
        took = time.monotonic() - started
        await asyncio.sleep(0.02)  # the tick a stall delayed comes now
        ticking.cancel()
        return answer, took, max(stalls)

    return asyncio.run(measured())


@pytest.mark.backends("sqlite")
def test_a_sqlite_transaction_too_long_for_the_event_loop_is_run_again_on_a_thread_and_answers(settings: Settings):
    db = Database(make_engine(settings.database_url, busy_timeout=5), connections=3, timeout=30)

    def count(conn: Connection, n: int, *, plus: int) -> int:  # its arguments go along to the thread
        return counting_to(n)(conn) + plus

    try:
        answer, _took, stall = with_the_loops_longest_stall(lambda: db.read(count, 2_000_000, plus=1))
    finally:
        db.close()

    # Counting takes ~0.8 s; a loaded machine (load 12 and more) has kept the loop from a tick for
    # 0.19 s when nothing was wrong.
    assert answer == 2_000_001
    assert stall < 0.3, f"the event loop stood still for {stall:.3f} s"


@pytest.mark.backends("sqlite")
def test_more_sqlite_transactions_too_long_for_the_loop_than_connections_queue_on_their_threads_and_all_answer(
    settings: Settings, engine: Engine
):
    # Three connections: the loop's, the writer thread's, the one reader thread's, each kept for
    # every transaction after. A fourth would wait the pool's 0.2 s and be a 503.
    db = Database(make_engine(settings.database_url, busy_timeout=0.2, pool_size=3), connections=3, timeout=30)
    count = counting_to(200_000)  # ~0.1 s: past LOOP_BUDGET

    def count_then_create(conn: Connection) -> int:
        count(conn)
        return study_sessions.create(conn, group_id=1, study_activity_id=1, created_at=NOW).id

    async def all_at_once() -> list[int]:
        reads = [db.read(count) for _ in range(4)]
        writes = [db.write(count_then_create) for _ in range(3)]
        return await asyncio.gather(*reads, *writes)

    try:
        answers = asyncio.run(all_at_once())
        again = asyncio.run(db.read(count))  # on a new event loop: the threads' connections serve it
    finally:
        db.close()

    assert answers[:4] == [200_000] * 4
    assert sorted(answers[4:]) == [1, 2, 3]  # in the order each found the write lock free
    assert again == 200_000
    assert count_sessions(engine) == 3


@pytest.mark.backends("sqlite")
def test_a_transaction_on_a_thread_is_one_connection_in_use_while_it_runs_and_none_after(settings: Settings):
    # What db_connections{state="in_use"|"open"} shows (edge/metrics.py): a transaction too long for
    # the loop is counted while it runs on its thread; the loop's connection and then the reader's open.
    seen: list[tuple[int, int]] = []
    db = Database(
        make_engine(settings.database_url, busy_timeout=5),
        connections=3,
        timeout=30,
        observe=lambda in_use, open_: seen.append((in_use, open_)),
    )
    try:
        answer = asyncio.run(db.read(counting_to(200_000)))
    finally:
        db.close()

    assert answer == 200_000
    assert seen == [(0, 1), (1, 1), (0, 2)]


def test_a_sqlite_file_that_could_not_be_opened_is_opened_by_the_next_transaction_once_it_can(tmp_path):
    (tmp_path / "data").write_text("")  # a file where the database's folder should be: it cannot be opened
    url = f"sqlite:///{tmp_path}/data/study.db"
    db = Database(make_engine(url, busy_timeout=0.2), connections=3, timeout=1)
    try:
        with pytest.raises(Unavailable):
            asyncio.run(db.read(migrate.revision))
        (tmp_path / "data").unlink()  # the volume comes back
        creating = make_engine(url)
        migrate.upgrade(creating)
        creating.dispose()
        revision = asyncio.run(db.read(migrate.revision))
    finally:
        db.close()

    assert revision == migrate.HEAD


@pytest.mark.backends("sqlite")
def test_a_request_cancelled_while_the_file_is_first_opened_leaves_the_next_ones_every_connection(
    settings: Settings, engine: Engine
):
    # The first transaction opens the file; another process holds it locked, so the open waits on
    # a thread. Its client goes away meanwhile (the transaction is cancelled), and the next request
    # must wait for that same open, not start one of its own: a second open would leave the first
    # connection open and unused, one of the pool's three lost, and then a read and a write too
    # long for the loop at once would not both find a connection (one a 503 after the pool's wait).
    engine.dispose()  # in WAL mode, a lock that shuts out a new connection needs every other one closed
    holder = held_by_another_process(settings, exclusive=True)
    db = Database(make_engine(settings.database_url, busy_timeout=3, pool_size=3), connections=3, timeout=30)
    count = counting_to(200_000)  # ~0.1 s: past LOOP_BUDGET

    def count_then_create(conn: Connection) -> int:
        count(conn)
        return create(conn)

    async def cancelled_during_the_open_then_asked_again() -> tuple[bool, str | None, list[int]]:
        first = asyncio.create_task(db.read(migrate.revision))
        await asyncio.sleep(0.2)  # it waits for the file's lock, in the first open
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        second = asyncio.create_task(db.read(migrate.revision))
        await asyncio.sleep(0.2)
        holder.close()  # the other process lets go
        revision = await second
        both = await asyncio.gather(db.read(count), db.write(count_then_create))
        return first.cancelled(), revision, list(both)

    try:
        cancelled, revision, answers = asyncio.run(cancelled_during_the_open_then_asked_again())
    finally:
        holder.close()
        db.close()

    assert cancelled
    assert revision == migrate.HEAD
    assert answers == [200_000, 1]
    assert count_sessions(engine) == 1


@pytest.mark.backends("sqlite")
def test_a_read_while_another_process_holds_the_write_lock_answers_at_once_without_its_uncommitted_rows(
    settings: Settings, engine: Engine
):
    db = Database(make_engine(settings.database_url, busy_timeout=5), connections=3, timeout=3)
    holder = held_by_another_process(settings)
    holder.execute("INSERT INTO study_sessions (group_id, study_activity_id, created_at) VALUES (1, 1, '2026-11-27')")
    try:
        started = time.monotonic()
        listed = asyncio.run(db.read(study_sessions.list_page, page=1, per_page=10))
        took = time.monotonic() - started
    finally:
        holder.rollback()
        holder.close()
        db.close()

    assert listed.total == 0
    assert took < 1.5  # a read begun as a writer would wait out the lock: a 503 after 3 s


@pytest.mark.backends("sqlite")
def test_a_write_waiting_out_a_lock_when_the_database_closes_is_unavailable_saying_it_is_shutting_down(
    settings: Settings, engine: Engine
):
    db = Database(make_engine(settings.database_url, busy_timeout=5), connections=3, timeout=5)
    holder = held_by_another_process(settings)

    async def close_while_it_waits() -> int:
        writing = asyncio.create_task(db.write(create))
        await asyncio.sleep(0.1)  # it has found the file locked and sleeps before its next try
        db.close()
        return await writing

    try:
        with pytest.raises(Unavailable) as raised:
            asyncio.run(close_while_it_waits())
    finally:
        holder.rollback()
        holder.close()

    assert raised.value.cause == "it is shutting down"
    assert str(raised.value) == "the database is closed"  # the log's `error`
    assert count_sessions(engine) == 0


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_a_sqlite_transaction_still_running_at_the_timeout_is_unavailable_and_stores_nothing(
    settings: Settings, engine: Engine, write: bool
):
    db = Database(make_engine(settings.database_url, busy_timeout=5), connections=3, timeout=1)
    slow = counting_to(100_000_000)  # tens of seconds

    def create_then_count(conn: Connection) -> int:
        study_sessions.create(conn, group_id=1, study_activity_id=1, created_at=NOW)
        return slow(conn)

    try:
        answer, took, stall = with_the_loops_longest_stall(
            lambda: db.write(create_then_count) if write else db.read(slow)
        )
    finally:
        db.close()

    assert isinstance(answer, Unavailable)
    assert answer.cause == "it did not answer within DB_TIMEOUT"
    assert 1 <= took < 3
    assert stall < 0.3, f"the event loop stood still for {stall:.3f} s"  # held, it would stand 1 s
    assert count_sessions(engine) == 0


@pytest.mark.backends("sqlite")
def test_a_sqlite_file_locked_by_another_process_keeps_a_write_waiting_not_the_event_loop(
    settings: Settings, engine: Engine
):
    db = Database(make_engine(settings.database_url, busy_timeout=5), connections=3, timeout=5)
    holder = held_by_another_process(settings)

    async def write_while_locked_for_a_second() -> int:
        asyncio.get_running_loop().call_later(1, holder.rollback)
        return await db.write(create)

    try:
        answer, took, stall = with_the_loops_longest_stall(write_while_locked_for_a_second)
    finally:
        holder.close()
        db.close()

    assert answer == 1
    assert 1 <= took < 2.5
    assert stall < 0.3, f"the event loop stood still for {stall:.3f} s"  # held, it would stand 1 s
    assert count_sessions(engine) == 1


@pytest.mark.backends("postgresql")
def test_closing_on_the_event_loop_hangs_up_every_postgresql_connection_it_opened(settings: Settings):
    # What the service does when it stops (app.py's lifespan): the connections it opened on the
    # event loop are closed there, not left for the server to find dead.
    db = Database(make_engine(settings.database_url, busy_timeout=5), connections=3, timeout=5)
    others = create_engine(settings.database_url, poolclass=NullPool)  # counts, and holds none itself

    def backends() -> int:
        with others.connect() as conn:
            mine = (
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            return int(conn.execute(text(mine)).scalar_one())

    def sleep(conn: Connection) -> int:
        return int(conn.execute(text("SELECT 1 FROM pg_sleep(0.2)")).scalar_one())

    async def use_then_close() -> tuple[int, int]:
        await asyncio.gather(*(db.read(sleep) for _ in range(3)))  # three at once: three connections
        opened = backends()
        await db.aclose()
        return opened, backends()

    before = backends()
    try:
        opened, after = asyncio.run(use_then_close())
    finally:
        db.close()
        others.dispose()

    assert (opened, after) == (before + 3, before)


@pytest.mark.backends("postgresql")
def test_a_postgresql_read_past_the_timeout_is_tried_once_then_unavailable(settings: Settings, engine: Engine):
    # Only a connection the server ended earns a read a second try: a statement timeout is not
    # tried again, or a client would wait twice DB_TIMEOUT for its 503.
    db = Database(make_engine(settings.database_url, busy_timeout=0.5), connections=2, timeout=0.5)
    tries = []
    event.listen(db.engine, "before_cursor_execute", lambda *args: tries.append(1) if "groups" in args[2] else None)

    def read_groups(conn: Connection) -> int:
        return len(conn.execute(select(groups)).all())

    try:
        with engine.connect() as holder, holder.begin():
            holder.execute(text("LOCK TABLE groups IN ACCESS EXCLUSIVE MODE"))
            with pytest.raises(Unavailable) as raised:
                asyncio.run(db.read(read_groups))
            holder.rollback()
    finally:
        db.close()

    assert raised.value.cause == "it did not answer within DB_TIMEOUT"
    assert tries == [1]


@pytest.mark.backends("postgresql")
def test_a_transaction_that_waited_the_timeout_for_a_connection_is_unavailable_and_never_runs(
    settings: Settings, engine: Engine
):
    # One connection, held by a read of two statements, each within the timeout but 0.6 s in all:
    # the read is stopped at its 0.5 s, and the write asked for at the same moment, which waited
    # those 0.5 s for the connection, is not started at all.
    db = Database(make_engine(settings.database_url, busy_timeout=0.5, pool_size=1), connections=1, timeout=0.5)

    def slow_read(conn: Connection) -> int:
        conn.execute(text("SELECT pg_sleep(0.3)"))
        conn.execute(text("SELECT pg_sleep(0.3)"))
        return 1

    async def both_at_once() -> tuple[float, tuple[int | BaseException, int | BaseException]]:
        started = time.monotonic()
        answers = await asyncio.gather(db.read(slow_read), db.write(create), return_exceptions=True)
        return time.monotonic() - started, answers

    try:
        took, (read, write) = asyncio.run(both_at_once())
    finally:
        db.close()

    assert isinstance(read, Unavailable) and read.cause == "it did not answer within DB_TIMEOUT"
    assert str(read) == "no answer within 0.5 s"  # the log's `error`
    assert isinstance(write, Unavailable)
    assert write.cause == "it is busy: no connection came free in time"
    assert str(write) == "no connection came free in 0.5 s"  # the log's `error`
    assert took < 0.5 + 0.3  # each within its own 0.5 s, never one after the other
    assert count_sessions(engine) == 0


@pytest.mark.backends("postgresql")
def test_postgresql_reads_go_on_while_as_many_writes_as_connections_wait_on_a_lock(settings: Settings, engine: Engine):
    # What keeps a worker answering reads while its creates wait on a lock (the live
    # test_with_the_write_lock_held_elsewhere_...): writes take every connection but one.
    db = Database(make_engine(settings.database_url, busy_timeout=1.5, pool_size=3), connections=3, timeout=1.5)

    async def writes_then_a_read() -> tuple[int, float, list[int | BaseException]]:
        writes = [asyncio.ensure_future(db.write(create)) for _ in range(3)]
        await asyncio.sleep(0.3)  # they wait on the lock, or for their turn to write
        started = time.monotonic()
        total = (await db.read(study_sessions.list_page, page=1, per_page=10)).total
        took = time.monotonic() - started
        return total, took, await asyncio.gather(*writes, return_exceptions=True)

    try:
        with engine.connect() as holder, holder.begin():
            holder.execute(text("LOCK TABLE study_sessions IN EXCLUSIVE MODE"))  # reads may, writes wait
            total, took, writes = asyncio.run(writes_then_a_read())
            holder.rollback()
    finally:
        db.close()

    assert total == 0
    assert took < 0.5  # not after the writes' 1.5 s
    assert all(isinstance(write, Unavailable) for write in writes)
    assert count_sessions(engine) == 0


@pytest.mark.backends("postgresql")
def test_postgresql_runs_as_many_writes_at_once_as_connections_but_one(settings: Settings, engine: Engine):
    db = Database(make_engine(settings.database_url, busy_timeout=2, pool_size=3), connections=3, timeout=1.6)

    def create_slowly(conn: Connection, seconds: float, *, group_id: int) -> int:  # its arguments go along
        conn.execute(text("SELECT pg_sleep(:s)"), {"s": seconds})
        return study_sessions.create(conn, group_id=group_id, study_activity_id=1, created_at=NOW).id

    async def two_at_once() -> list[int]:
        # The connections opened first, so that a loaded machine's slow connecting is not counted.
        await asyncio.gather(db.write(create_slowly, 0, group_id=1), db.write(create_slowly, 0, group_id=2))
        return list(
            await asyncio.gather(db.write(create_slowly, 1, group_id=1), db.write(create_slowly, 1, group_id=2))
        )

    try:
        ids = asyncio.run(two_at_once())  # one after the other, the second would end past its 1.6 s
    finally:
        db.close()

    assert sorted(ids) == [3, 4]
    assert count_sessions(engine) == 4


@pytest.mark.backends("postgresql")
def test_a_postgresql_write_that_raises_after_writing_stores_nothing(settings: Settings, engine: Engine):
    db = Database(make_engine(settings.database_url, busy_timeout=3), connections=2, timeout=3)

    def create_then_refuse(conn: Connection) -> int:
        create(conn)
        raise Unprocessable([])

    try:
        with pytest.raises(Unprocessable):
            asyncio.run(db.write(create_then_refuse))
    finally:
        db.close()

    assert count_sessions(engine) == 0


@pytest.mark.backends("postgresql")
def test_postgresql_transactions_are_counted_in_use_and_their_connections_open_as_each_ends(settings: Settings):
    # What db_connections{state="in_use"|"open"} shows (edge/metrics.py).
    seen: list[tuple[int, int]] = []
    db = Database(
        make_engine(settings.database_url, busy_timeout=3, pool_size=3),
        connections=3,
        timeout=3,
        observe=lambda in_use, open_: seen.append((in_use, open_)),
    )

    def sleeping(seconds: float) -> Callable[[Connection], None]:
        return lambda conn: conn.execute(text("SELECT pg_sleep(:s)"), {"s": seconds}).scalar()

    async def two_at_once() -> None:
        await asyncio.gather(db.read(sleeping(0.1)), db.write(sleeping(0.4)))

    try:
        asyncio.run(two_at_once())
    finally:
        db.close()

    assert seen == [(1, 2), (0, 2)]


@pytest.mark.backends("postgresql")
def test_a_failed_postgresql_transactions_error_names_the_statement_never_a_clients_values(settings: Settings):
    # What a 500's log line says, from the connections the service's transactions run on.
    db = Database(make_engine(settings.database_url, busy_timeout=3), connections=2, timeout=3)

    def failing(conn: Connection) -> None:
        conn.execute(text("SELECT name FROM no_such_table WHERE name = :name"), {"name": "a client's secret"})

    try:
        with pytest.raises(exc.DBAPIError) as raised:
            asyncio.run(db.read(failing))
    finally:
        db.close()

    assert "SELECT name FROM no_such_table" in str(raised.value)
    assert "a client's secret" not in str(raised.value)


@pytest.mark.backends("postgresql")
def test_postgresql_transactions_prepare_no_statement_on_the_server(settings: Settings):
    # PgBouncer in transaction pooling mode lends each transaction any server connection, where a
    # statement prepared on another is missing (docs/scaling.md): psycopg must never prepare one,
    # as it does by default for a statement run five times on a connection.
    db = Database(make_engine(settings.database_url, busy_timeout=3, pool_size=1), connections=1, timeout=3)

    def prepared(conn: Connection) -> int:
        for _ in range(8):
            conn.execute(select(groups)).all()
        return int(conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar_one())

    try:
        count = asyncio.run(db.read(prepared))
    finally:
        db.close()

    assert count == 0


@pytest.mark.backends("postgresql")
def test_a_postgresql_database_serves_a_new_event_loop_as_it_served_the_one_before(
    settings: Settings, caplog: pytest.LogCaptureFixture
):
    # A test's asyncio.run, or a worker's loop made anew: what the pool made on a loop that is gone
    # (its connections, the queue where transactions wait for one) is not the new loop's. Those
    # connections are let go, not closed: closing one off its loop logs an error (MissingGreenlet).
    db = Database(make_engine(settings.database_url, busy_timeout=3, pool_size=1), connections=1, timeout=3)

    def sleeping(conn: Connection) -> int:
        conn.execute(text("SELECT pg_sleep(0.1)"))
        return 1

    async def two_at_once() -> list[int]:  # the second waits for the one connection
        return list(await asyncio.gather(db.read(sleeping), db.read(sleeping)))

    try:
        first = asyncio.run(two_at_once())
        second = asyncio.run(two_at_once())
    finally:
        db.close()

    assert first == second == [1, 1]
    assert [record.getMessage() for record in caplog.records if record.levelname == "ERROR"] == []


def test_a_list_total_follows_creates_refusals_and_deletes_without_counting_the_table(engine: Engine):
    with transaction(engine, write=True) as conn:
        for id in (3, 1, 2):
            study_sessions.create(conn, id=id, group_id=1, study_activity_id=1, created_at=NOW)
    with pytest.raises(Duplicate), transaction(engine, write=True) as conn:
        study_sessions.create(conn, id=3, group_id=2, study_activity_id=2, created_at=NOW)
    with transaction(engine, write=True) as conn:
        conn.execute(delete(schema.study_sessions).where(schema.study_sessions.c.id == 1))
        study_sessions.create(conn, group_id=2, study_activity_id=2, created_at=NOW)

    with transaction(engine) as conn:
        listed = study_sessions.list_page(conn, page=1, per_page=2)
        kept = conn.execute(select(schema.row_counts.c.n)).scalars().all()

    assert (listed.total, listed.total_pages) == (3, 2)
    assert count_sessions(engine) == 3
    assert sum(kept) == 3


@pytest.mark.backends("postgresql")
def test_an_idless_create_skips_ids_a_client_took_before_the_sequence_moved_past_them(engine: Engine):
    # The race, made certain: clients' rows at the next three ids the sequence gives, their
    # transactions not yet at the statement that moves it on.
    with transaction(engine, write=True) as conn:
        ahead = conn.execute(text("SELECT nextval('study_sessions_id_seq')")).scalar_one()
        conn.execute(text("SELECT setval('study_sessions_id_seq', :v, false)"), {"v": ahead})
        for id in (ahead, ahead + 1, ahead + 2):
            conn.execute(insert(schema.study_sessions).values(id=id, group_id=1, study_activity_id=1, created_at=NOW))

    with transaction(engine, write=True) as conn:
        created = study_sessions.create(conn, group_id=2, study_activity_id=2, created_at=NOW)

    assert created.id == ahead + 3
    assert count_sessions(engine) == 4


@pytest.mark.backends("postgresql")
def test_near_the_end_of_the_id_range_server_picked_ids_are_random_free_ones(engine: Engine):
    with transaction(engine, write=True) as conn:
        study_sessions.create(conn, id=study_sessions.SEQUENCE_END + 5, group_id=1, study_activity_id=1, created_at=NOW)
        conn.execute(text("SELECT setval('study_sessions_id_seq', :v)"), {"v": study_sessions.SEQUENCE_END})
    with transaction(engine, write=True) as conn:
        picked = [study_sessions.create(conn, group_id=1, study_activity_id=1, created_at=NOW).id for _ in range(20)]

    assert len(set(picked)) == 20
    assert all(1 <= id <= study_sessions.MAX_ID for id in picked)
    assert count_sessions(engine) == 21


def test_a_path_with_uri_characters_opens_the_database_it_names(tmp_path):
    # The serving engine opens the file as a URI (mode=rw); unquoted, "#" would end its path.
    path = tmp_path / "a#b c" / "study.db"
    migrate.upgrade(make_engine(f"sqlite:///{path}"))
    serving = make_engine(f"sqlite:///{path}", create=False)

    with transaction(serving) as conn:
        assert conn.execute(select(text("count(*)")).select_from(groups)).scalar() == 0
    serving.dispose()
    files = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert "a#b c/study.db" in files <= {"a#b c/study.db", "a#b c/study.db-wal", "a#b c/study.db-shm"}


def test_a_serving_engine_opens_a_file_uri_as_it_is_given(tmp_path):
    # DATABASE_URL may name the file as a SQLite URI itself (here read-only): it is opened as given,
    # not taken for a path.
    path = tmp_path / "study.db"
    creating = make_engine(f"sqlite:///{path}")
    migrate.upgrade(creating)
    creating.dispose()
    serving = make_engine(f"sqlite:///file:{path}?mode=ro&uri=true", create=False)

    try:
        with transaction(serving) as conn:
            revision = migrate.revision(conn)
        with pytest.raises(Unavailable) as raised, transaction(serving, write=True) as conn:
            conn.execute(insert(groups).values(name="Not stored"))
    finally:
        serving.dispose()

    assert revision == migrate.HEAD
    assert raised.value.cause == "its file is read-only"


def test_one_connection_a_worker_still_serves_writes_and_reads_on_sqlite(tmp_path):
    # SQLite keeps a connection for its writer thread and one for reads, whatever DB_POOL_SIZE says.
    url = f"sqlite:///{tmp_path}/study.db"
    creating = make_engine(url)
    migrate.upgrade(creating)
    migrate.seed(creating)
    creating.dispose()
    settings = Settings(database_url=url, db_pool_size=1, db_timeout=1, rate_limit_write="off", rate_limit_read="off")

    with TestClient(create_app(settings)) as client:
        created = client.post("/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 1})
        read = client.get(created.headers["Location"])
        again = client.post("/api/v1/study-sessions", json={"group_id": 2, "study_activity_id": 1})

    assert (created.status_code, read.status_code, again.status_code) == (201, 200, 201)


@contextmanager
def unmigrated_database(backend: str, folder: Path) -> Iterator[str]:
    """The URL of a database that was never migrated: a new SQLite file in `folder`, or a new
    PostgreSQL database, dropped after."""
    if backend == "sqlite":
        yield f"sqlite:///{folder}/study.db"
        return
    name = f"study_sessions_fresh_{uuid.uuid4().hex[:12]}"
    admin = admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRESQL_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        drop_database(admin, name)
        admin.dispose()


def test_the_revision_is_read_in_a_transaction_that_goes_on_and_by_the_databases_reads(backend: str, tmp_path):
    # migrate.revision is what /readyz reads, through Database.read (in autocommit on PostgreSQL);
    # in a transaction, a missing alembic_version (PostgreSQL aborts a transaction at a failed
    # statement) must leave the transaction usable.
    with unmigrated_database(backend, tmp_path) as url:
        engine = make_engine(url, busy_timeout=3)
        db = Database(make_engine(url, busy_timeout=3), connections=3, timeout=3)
        try:
            with transaction(engine) as conn:
                never = migrate.revision(conn)
                after = conn.execute(select(literal(1))).scalar()
            read_never = asyncio.run(db.read(migrate.revision))
            migrate.upgrade(engine)
            read_head = asyncio.run(db.read(migrate.revision))
        finally:
            db.close()
            engine.dispose()

    assert (never, after) == (None, 1)
    assert read_never is None
    assert read_head == migrate.HEAD


def test_hosts_that_migrate_one_database_at_once_take_turns(backend: str, tmp_path):
    # Two gunicorn masters starting together: each migrates and seeds before its workers start.
    # On SQLite each migration takes the write lock from its start, so the others wait their turn:
    # begun as readers they would run together (one that read before another's commit could not
    # write, a failed start; and here, in one process, alembic's one context would be shared).
    def start(engine: Engine) -> None:
        migrate.upgrade(engine)
        migrate.seed(engine)

    with unmigrated_database(backend, tmp_path) as url:
        engines = [make_engine(url, busy_timeout=30) for _ in range(4)]
        try:
            with ThreadPoolExecutor(max_workers=len(engines)) as pool:
                list(pool.map(start, engines))

            with transaction(engines[0]) as conn:
                assert migrate.revision(conn) == migrate.HEAD
                assert conn.execute(select(text("count(*)")).select_from(groups)).scalar() == len(migrate.GROUPS)
        finally:
            for engine in engines:
                engine.dispose()
