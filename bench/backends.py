"""Where the apps' databases come from: one prepared database per size (sessions, and a review
item for each), and a copy of it for each app, brought back to its prefilled rows before every run;
SQLite files, or databases on the PostgreSQL server that DATABASE_URL names."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from psycopg import sql as pgsql

from bench.peers import pg, sql
from storage import migrate
from storage.engine import make_engine

FIRST_CREATED_AT = datetime(2026, 1, 1, tzinfo=UTC)


def prefilled_rows(sessions: int) -> list[tuple[int, int, int, str]]:
    """Sessions 1..`sessions`, 1.5 s apart (so half the instants have no fraction of a second),
    over every seeded group and activity."""
    return [
        (i, i % 4 + 1, i % 3 + 1, sql.stored(FIRST_CREATED_AT + timedelta(milliseconds=1500 * i)))
        for i in range(1, sessions + 1)
    ]


def prefilled_reviews(sessions: int, words: dict[int, list[int]]) -> list[tuple[int, int, int, int, str]]:
    """One review item per prefilled session, of a word of its group (`words` by group), right
    for even sessions and wrong for odd ones, so that every page shows counts from the join."""
    return [
        (session, session, words[group][session % len(words[group])], int(session % 2 == 0), created_at)
        for session, group, _, created_at in prefilled_rows(sessions)
    ]


def words_by_group(conn: sqlite3.Connection | pg.Connection) -> dict[int, list[int]]:
    """The seeded words of each group, by id."""
    found: dict[int, list[int]] = {}
    for group, word in conn.execute("SELECT group_id, word_id FROM word_groups ORDER BY group_id, word_id"):
        found.setdefault(group, []).append(word)
    return found


def fill(conn: sqlite3.Connection, sessions: int) -> None:
    """Sessions 1..`sessions` and their review items, in one transaction."""
    conn.execute("BEGIN")
    conn.executemany(sql.PREFILL, prefilled_rows(sessions))
    conn.executemany(sql.PREFILL_REVIEW, prefilled_reviews(sessions, words_by_group(conn)))
    conn.execute("COMMIT")


class Backend(Protocol):
    """What the harness asks of a database backend."""

    name: str

    def copy(self, sessions: int, app: str) -> str: ...

    def reset(self, url: str, sessions: int) -> None: ...

    def close(self) -> None: ...


class SqliteBackend:
    """SQLite files in `folder`: a template per size, made as the service makes a database
    (storage.migrate), prefilled in bulk, then copied once for each app."""

    name = "sqlite"

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.templates: dict[int, Path] = {}

    def copy(self, sessions: int, app: str) -> str:
        """The DATABASE_URL of `app`'s own copy of the database prefilled with `sessions` sessions."""
        target = self.folder / f"{app}-{sessions}.db"
        for leftover in (target, target.with_name(target.name + "-wal"), target.with_name(target.name + "-shm")):
            leftover.unlink(missing_ok=True)
        shutil.copyfile(self._template(sessions), target)
        return f"sqlite:///{target}"

    def reset(self, url: str, sessions: int) -> None:
        """Back to the prefilled sessions only, while the app keeps running: what a run created
        goes, so that every run sees the same rows."""
        conn = sql.connect(sql.database_path(url))
        try:
            conn.execute("DELETE FROM review_items WHERE id > ?", (sessions,))
            # Reviews posted into a session created during the run leave its count row behind.
            conn.execute("DELETE FROM review_counts WHERE study_session_id > ?", (sessions,))
            conn.execute("DELETE FROM study_sessions WHERE id > ?", (sessions,))
        finally:
            conn.close()

    def _template(self, sessions: int) -> Path:
        if sessions not in self.templates:
            path = self.folder / f"template-{sessions}.db"
            engine = make_engine(f"sqlite:///{path}")
            migrate.upgrade(engine)
            migrate.seed(engine)
            engine.dispose()
            conn = sql.connect(str(path))
            try:
                fill(conn, sessions)
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
            self.templates[sessions] = path
        return self.templates[sessions]

    def close(self) -> None:
        """Nothing to do: the files go with the folder."""


class PostgresBackend:
    """Databases on the PostgreSQL server that `url` (a SQLAlchemy URL) names: a template per size,
    made as the service makes a database (storage.migrate) and filled with COPY, then one copy of
    it per app (CREATE DATABASE ... TEMPLATE); `close` drops them all. The database `url` names is
    only connected to, to make and drop the others."""

    name = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[str] = []

    def database_url(self, database: str) -> str:
        """`url`, naming `database` instead."""
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{database}"

    def copy(self, sessions: int, app: str) -> str:
        """The DATABASE_URL of `app`'s own copy of the database prefilled with `sessions` sessions."""
        return self.copy_as(f"bench_{app.lower()}_{sessions}", sessions)

    def copy_as(self, database: str, sessions: int) -> str:
        """A new database `database`, a copy of the template of `sessions` sessions; its URL."""
        template = self._template(sessions)
        with self._admin() as admin:
            # CREATE DATABASE ... TEMPLATE refuses a template that anyone is connected to.
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (template,),
            )
            self._drop(admin, database)
            # FILE_COPY copies the files: at 1,000,000 sessions far faster than writing them to the WAL.
            admin.execute(
                pgsql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
                    pgsql.Identifier(database), pgsql.Identifier(template)
                )
            )
        self.made.append(database)
        return self.database_url(database)

    def server(self) -> str:
        """Which PostgreSQL, where: for the report's header."""
        with self._admin() as admin:
            found = admin.execute("SHOW server_version").fetchone()
            where = f"{admin.info.host}:{admin.info.port}"
        return f"PostgreSQL {found[0] if found else '?'} at {where}, databases bench_*"

    def reset(self, url: str, sessions: int) -> None:
        """Back to the prefilled sessions only, while the app keeps running: what a run created
        goes (the triggers take it off the counts), and both id sequences are set back, so that
        every run sees the same rows and is given the same ids."""
        with pg.connect(url) as conn:
            conn.execute("DELETE FROM review_items WHERE id > %s", (sessions,))
            # Emptied counts of sessions created in the run (zero once their reviews are gone).
            conn.execute("DELETE FROM review_counts WHERE study_session_id > %s", (sessions,))
            conn.execute("DELETE FROM study_sessions WHERE id > %s", (sessions,))
            _set_sequences(conn, sessions)

    def close(self) -> None:
        """Drop every database this backend made."""
        with self._admin() as admin:
            for database in reversed(self.made):
                self._drop(admin, database)
        self.made.clear()

    def _template(self, sessions: int) -> str:
        database = f"bench_tpl_{sessions}"
        if database not in self.made:
            with self._admin() as admin:
                self._drop(admin, database)
                admin.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(database)))
            self.made.append(database)
            url = self.database_url(database)
            engine = make_engine(url)
            migrate.upgrade(engine)
            migrate.seed(engine)
            engine.dispose()
            with pg.connect(url) as conn:
                fill_postgresql(conn, sessions)
                conn.commit()
                conn.autocommit = True
                conn.execute("VACUUM ANALYZE")
        return database

    def _admin(self) -> pg.Connection:
        return pg.connect(self.url, autocommit=True)

    @staticmethod
    def _drop(admin: pg.Connection, database: str) -> None:
        admin.execute(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(database)))


def fill_postgresql(conn: pg.Connection, sessions: int) -> None:
    """Sessions 1..`sessions` and their review items (the rows `fill` adds on SQLite), with COPY,
    in the caller's transaction. The triggers of migrations 0002 and 0005 run once per COPY and
    count the rows in; the sequences are moved past the ids taken."""
    # The instants are naive UTC text (sql.stored), read in the session's time zone.
    conn.execute("SET LOCAL TIME ZONE 'UTC'")
    sessions_copy = "COPY study_sessions (id, group_id, study_activity_id, created_at) FROM STDIN"
    _copy(conn, sessions_copy, prefilled_rows(sessions))
    reviews_copy = "COPY review_items (id, study_session_id, word_id, correct, created_at) FROM STDIN"
    _copy(conn, reviews_copy, prefilled_reviews(sessions, words_by_group(conn)))
    _set_sequences(conn, sessions)


def _copy(conn: pg.Connection, statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        for row in rows:
            copy.write_row(row)


def _set_sequences(conn: pg.Connection, sessions: int) -> None:
    """The next ids the server picks are `sessions` + 1, for sessions (migration 0003's sequence)
    and for review items (the serial of review_items.id)."""
    conn.execute("SELECT setval('study_sessions_id_seq', %s)", (sessions,))
    conn.execute("SELECT setval(pg_get_serial_sequence('review_items', 'id'), %s)", (sessions,))


def backend_for(database_url: str | None, folder: Path) -> Backend:
    """The backend that DATABASE_URL names: SQLite (files in `folder`) unless it names PostgreSQL."""
    if database_url and database_url.startswith("postgresql"):
        return PostgresBackend(database_url)
    return SqliteBackend(folder)
