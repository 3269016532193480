"""Every statement the peers run: the SQL that the service's storage layer runs today
(storage/study_sessions.py, storage/pages.py, storage/engine.py), statement for statement, on one
sqlite3 connection per worker process. When the service's SQL changes, change this module with it;
tests/test_bench.py compares the two statement by statement.

A PostgreSQL backend would add a psycopg twin of this module (its own placeholders and
`INSERT ... RETURNING` if the service takes them up); the peers would pick one by DATABASE_URL."""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Iterator
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
    "study_activities.name AS study_activity_name, study_sessions.created_at"
)
_LABELLED_COLUMNS = (
    "study_sessions.id AS id, study_sessions.group_id AS group_id, groups.name AS group_name, "
    "study_sessions.study_activity_id AS study_activity_id, study_activities.name AS study_activity_name, "
    "study_sessions.created_at AS created_at"
)
_JOINS = (
    "FROM study_sessions JOIN groups ON groups.id = study_sessions.group_id "
    "JOIN study_activities ON study_activities.id = study_sessions.study_activity_id"
)
EXISTS = "SELECT study_sessions.id \nFROM study_sessions \nWHERE study_sessions.id = ?"
GROUP_NAME = "SELECT groups.name \nFROM groups \nWHERE groups.id = ?"
ACTIVITY_NAME = "SELECT study_activities.name \nFROM study_activities \nWHERE study_activities.id = ?"
TOP_ID = "SELECT max(study_sessions.id) AS max_1 \nFROM study_sessions"
INSERT = "INSERT INTO study_sessions (id, group_id, study_activity_id, created_at) VALUES (?, ?, ?, ?)"
GET = f"SELECT {_COLUMNS} \n{_JOINS} \nWHERE study_sessions.id = ?"
COUNT = f"SELECT count(*) AS count_1 \nFROM (SELECT {_LABELLED_COLUMNS} \n{_JOINS}) AS anon_1"
PAGE = (
    f"SELECT {_COLUMNS} \n{_JOINS} ORDER BY study_sessions.created_at DESC, study_sessions.id DESC\n LIMIT ? OFFSET ?"
)
SAVEPOINT = "sa_savepoint_1"


class Duplicate(Exception):
    """The id asked for is taken."""


class Unknown(Exception):
    """The group or the activity named does not exist; `violations` are (pointer, detail) pairs."""

    def __init__(self, violations: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(detail for _, detail in violations))
        self.violations = violations


class Missing(Exception):
    """No session has that id."""


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


def _session(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "id": row[0],
        "group_id": row[1],
        "group_name": row[2],
        "study_activity_id": row[3],
        "study_activity_name": row[4],
        "created_at": instant(row[5]),
    }


def create(
    conn: sqlite3.Connection, *, group_id: int, study_activity_id: int, created_at: datetime, id: int | None
) -> dict[str, Any]:
    """Store a new session and answer it as the service does; `Duplicate` or `Unknown` otherwise."""
    with _transaction(conn, "BEGIN IMMEDIATE"):
        if id is not None and conn.execute(EXISTS, (id,)).fetchone() is not None:
            raise Duplicate(f"Study session {id} already exists.")
        group = conn.execute(GROUP_NAME, (group_id,)).fetchone()
        activity = conn.execute(ACTIVITY_NAME, (study_activity_id,)).fetchone()
        violations = []
        if group is None:
            violations.append(("/group_id", f"There is no group with id {group_id}."))
        if activity is None:
            violations.append(("/study_activity_id", f"There is no study activity with id {study_activity_id}."))
        if group is None or activity is None:
            raise Unknown(violations)
        chosen = id if id is not None else _free_id(conn)
        text = stored(created_at)
        # The write lock is held since BEGIN IMMEDIATE, so the id cannot be taken meanwhile: the
        # service's retry on a taken id never runs here.
        conn.execute(f"SAVEPOINT {SAVEPOINT}")
        conn.execute(INSERT, (chosen, group_id, study_activity_id, text))
        conn.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")
    return _session((chosen, group_id, group[0], study_activity_id, activity[0], text))


def _free_id(conn: sqlite3.Connection) -> int:
    top = conn.execute(TOP_ID).fetchone()[0] or 0
    if top >= MAX_ID:  # the service then picks a random free id; no benchmark gets there
        raise RuntimeError("every id up to 2**63-1 is taken")
    return int(top) + 1


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
        total = conn.execute(COUNT).fetchone()[0]
        rows = conn.execute(PAGE, (per_page, (page - 1) * per_page)).fetchall()
    return {
        "items": [_session(row) for row in rows],
        "total": total,
        "page": page,
        "per_page": per_page,
        "total_pages": -(-total // per_page),
    }
