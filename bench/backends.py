"""Where the apps' databases come from: one prepared database per size (sessions, and a review
item for each), and a copy of it for each app, brought back to its prefilled rows before every run."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.peers import sql
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


def words_by_group(conn: sqlite3.Connection) -> dict[int, list[int]]:
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


def backend_for(database_url: str | None, folder: Path) -> SqliteBackend:
    """The backend that DATABASE_URL names: SQLite (files in `folder`) unless it names PostgreSQL."""
    if database_url and database_url.startswith("postgresql"):
        # PostgreSQL goes here: a backend with the same three methods that makes one template
        # database per size (migrate, seed, COPY the sessions in) and each app's copy with
        # CREATE DATABASE ... TEMPLATE, handing out postgresql+psycopg:// URLs; the peers would
        # then need a psycopg twin of bench/peers/sql.py.
        raise SystemExit("The benchmark runs on SQLite only for now; unset DATABASE_URL.")
    return SqliteBackend(folder)
