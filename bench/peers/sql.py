"""Every statement the peers run: the SQL that the service's storage layer runs today
(storage/study_sessions.py, storage/pages.py, storage/engine.py), statement for statement, on one
sqlite3 connection per worker process. When the service's SQL changes, change this module with it;
tests/test_bench.py compares the two statement by statement.

On PostgreSQL the peers run pg.py, this module's psycopg twin, instead (bench.peers.statements
picks one by DATABASE_URL); it raises this module's exceptions."""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

MAX_ID = 2**63 - 1
MAX_CLOCK_SKEW = timedelta(seconds=300)
BUSY_TIMEOUT = 5.0
"""Seconds, the service's DB_TIMEOUT default."""

PRAGMAS = (
    f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}",
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA foreign_keys = ON",
)

# As SQLAlchemy compiles storage/study_sessions.py for SQLite, line breaks included.
_COLUMNS = (
    "study_sessions.id, study_sessions.group_id, groups.name AS group_name, study_sessions.study_activity_id, "
    "study_activities.name AS study_activity_name, study_sessions.created_at, "
    "coalesce(review_counts.reviews, 0) AS review_items_count, coalesce(review_counts.correct, 0) AS correct_count, "
    "coalesce(review_counts.reviews, 0) - coalesce(review_counts.correct, 0) AS wrong_count"
)
_JOINS = (
    "FROM study_sessions JOIN groups ON groups.id = study_sessions.group_id "
    "JOIN study_activities ON study_activities.id = study_sessions.study_activity_id "
    "LEFT OUTER JOIN review_counts ON review_counts.study_session_id = study_sessions.id"
)
NAMES = (
    "SELECT groups.name, study_activities.name AS name_1 \n"
    "FROM groups JOIN study_activities ON study_activities.id = ? \nWHERE groups.id = ?"
)
EXISTS = "SELECT study_sessions.id \nFROM study_sessions \nWHERE study_sessions.id = ?"
GROUP_EXISTS = "SELECT groups.id \nFROM groups \nWHERE groups.id = ?"
ACTIVITY_EXISTS = "SELECT study_activities.id \nFROM study_activities \nWHERE study_activities.id = ?"
PREFILL = "INSERT INTO study_sessions (id, group_id, study_activity_id, created_at) VALUES (?, ?, ?, ?)"
"""How the harness fills a database in bulk; not a statement of the service's."""
INSERT = (
    "INSERT INTO study_sessions (id, group_id, study_activity_id, created_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (id) DO NOTHING RETURNING id"
)
GET = f"SELECT {_COLUMNS} \n{_JOINS} \nWHERE study_sessions.id = ?"
PAGE = (
    f"SELECT {_COLUMNS} \n{_JOINS} JOIN (SELECT study_sessions.id AS id \nFROM study_sessions "
    "ORDER BY study_sessions.created_at DESC, study_sessions.id DESC\n LIMIT ? OFFSET ?) AS anon_1 "
    "ON anon_1.id = study_sessions.id ORDER BY study_sessions.created_at DESC, study_sessions.id DESC"
)
REVIEW = (
    "INSERT INTO review_items (study_session_id, word_id, correct, created_at) SELECT study_sessions.id, "
    "word_groups.word_id, ? AS anon_1, ? AS anon_2 \nFROM study_sessions JOIN word_groups ON word_groups.group_id = "
    "study_sessions.group_id \nWHERE study_sessions.id = ? AND word_groups.word_id = ? RETURNING id"
)
GROUP_OF = "SELECT study_sessions.group_id \nFROM study_sessions \nWHERE study_sessions.id = ?"
WORD_EXISTS = "SELECT words.id \nFROM words \nWHERE words.id = ?"
PREFILL_REVIEW = "INSERT INTO review_items (id, study_session_id, word_id, correct, created_at) VALUES (?, ?, ?, ?, ?)"
"""How the harness fills review items in bulk; not a statement of the service's."""
COUNT = (
    "SELECT CAST(coalesce(sum(row_counts.n), ?) AS BIGINT) AS coalesce_1 \nFROM row_counts "
    "\nWHERE row_counts.table_name = ?"
)


class Duplicate(Exception):
    """The id asked for is taken."""


class Unknown(Exception):
    """The group or the activity named does not exist; `violations` are (pointer, detail) pairs."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(detail for _, detail in violations))
        self.violations = violations


class Missing(Exception):
    """No session has that id."""


class NotInGroup(Exception):
    """The word of a review does not exist or is not in the session's group."""


def connect(path: str) -> sqlite3.Connection:
    """A connection set up as storage/engine.py sets up the service's: transactions are begun
    explicitly, as SQLAlchemy begins them there."""
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    return conn


def database_path(url: str) -> str:
    """The file a `sqlite:///path` URL names."""
    prefix = "sqlite:///"
    if not url.startswith(prefix):
        raise ValueError(f"the peers take a SQLite file URL (sqlite:///path), not {url!r}")
    return url.removeprefix(prefix)


@functools.cache
def connection() -> sqlite3.Connection:
    """This worker process's one connection, to the database DATABASE_URL names."""
    return connect(database_path(os.environ["DATABASE_URL"]))


@contextmanager
def _transaction(conn: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[sqlite3.Connection]:
    conn.execute(begin)
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def stored(instant: datetime) -> str:
    """An aware datetime as the service stores it: naive UTC text with microseconds."""
    return instant.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


def instant(text: str) -> str:
    """A stored datetime as the service answers it: RFC 3339 UTC, microseconds only if not 0."""
    whole = text[:19] if text.endswith(".000000") else text
    return whole.replace(" ", "T") + "Z"


def accepted_created_at(given: datetime, now: datetime) -> datetime | None:
    """`given` in UTC, or None when it is further ahead of `now` than the service allows."""
    return None if given > now + MAX_CLOCK_SKEW else given.astimezone(UTC)


def session_body(row: tuple[Any, ...], as_instant: Callable[[Any], str]) -> dict[str, Any]:
    """A session row (the GET statement's columns) as the service answers it; `as_instant` turns
    the driver's `created_at` into RFC 3339 text."""
    return {
        "id": row[0],
        "group_id": row[1],
        "group_name": row[2],
        "study_activity_id": row[3],
        "study_activity_name": row[4],
        "created_at": as_instant(row[5]),
        "review_items_count": row[6],
        "correct_count": row[7],
        "wrong_count": row[8],
    }


def page_body(items: list[dict[str, Any]], *, total: int, page: int, per_page: int) -> dict[str, Any]:
    """A page of sessions as the service's page body."""
    return {"items": items, "total": total, "page": page, "per_page": per_page, "total_pages": -(-total // per_page)}


def _session(row: tuple[Any, ...]) -> dict[str, Any]:
    return session_body(row, instant)


def create(
    conn: sqlite3.Connection, *, group_id: int, study_activity_id: int, created_at: datetime, id: int | None
) -> dict[str, Any]:
    """Store a new session and answer it as the service does; `Duplicate` or `Unknown` otherwise."""
    text = stored(created_at)
    with _transaction(conn, "BEGIN IMMEDIATE"):
        names = conn.execute(NAMES, (study_activity_id, group_id)).fetchone()
        if names is not None:
            row = conn.execute(INSERT, (id, group_id, study_activity_id, text)).fetchone()
            if row is None:
                raise Duplicate(f"Study session {id} already exists.")
            return _session((row[0], group_id, names[0], study_activity_id, names[1], text, 0, 0, 0))
        if id is not None and conn.execute(EXISTS, (id,)).fetchone() is not None:
            raise Duplicate(f"Study session {id} already exists.")
        violations = []
        if conn.execute(GROUP_EXISTS, (group_id,)).fetchone() is None:
            violations.append(("/group_id", f"There is no group with id {group_id}."))
        if conn.execute(ACTIVITY_EXISTS, (study_activity_id,)).fetchone() is None:
            violations.append(("/study_activity_id", f"There is no study activity with id {study_activity_id}."))
        raise Unknown(violations)


def review(conn: sqlite3.Connection, *, study_session_id: int, word_id: int, correct: bool) -> dict[str, Any]:
    """Store a review item and answer it as the service does; `Missing` if there is no such
    session, `NotInGroup` if the word is not in its group."""
    text = stored(datetime.now(UTC))
    with _transaction(conn, "BEGIN IMMEDIATE"):
        row = conn.execute(REVIEW, (int(correct), text, study_session_id, word_id)).fetchone()
        if row is None:
            group = conn.execute(GROUP_OF, (study_session_id,)).fetchone()
            if group is None:
                raise Missing(f"There is no study session with id {study_session_id}.")
            if conn.execute(WORD_EXISTS, (word_id,)).fetchone() is None:
                raise NotInGroup(f"There is no word with id {word_id}.")
            raise NotInGroup(
                f"Word {word_id} is not in group {group[0]}, the group of study session {study_session_id}."
            )
    return {
        "id": row[0],
        "study_session_id": study_session_id,
        "word_id": word_id,
        "correct": correct,
        "created_at": instant(text),
    }


def get(conn: sqlite3.Connection, id: int) -> dict[str, Any]:
    """The session `id`; `Missing` if there is none."""
    with _transaction(conn):
        row = conn.execute(GET, (id,)).fetchone()
        if row is None:
            raise Missing(f"There is no study session with id {id}.")
    return _session(row)


def list_page(conn: sqlite3.Connection, *, page: int, per_page: int) -> dict[str, Any]:
    """Page `page` of the sessions, newest first, as the service's page body."""
    with _transaction(conn):
        rows = conn.execute(PAGE, (per_page, (page - 1) * per_page)).fetchall()
        total = conn.execute(COUNT, (0, "study_sessions")).fetchone()[0]
    return page_body([_session(row) for row in rows], total=total, page=page, per_page=per_page)
