"""The psycopg twin of bench/peers/sql.py, for a DATABASE_URL that names PostgreSQL: every
statement the service's storage layer runs there (storage/study_sessions.py, storage/reviews.py,
storage/pages.py), as SQLAlchemy's psycopg dialect compiles it, placeholders and casts included,
with the same parameters; on one psycopg connection per worker process, set up as
storage/engine.py sets up the service's. The same functions as sql.py, raising its exceptions, so
that a peer picks one module or the other by DATABASE_URL and nothing else changes.

As with SQLAlchemy there, a write's transaction begins implicitly at its first statement
(autocommit is off) and ends in COMMIT, or in ROLLBACK when it raises; reads run in autocommit, as
the service's do."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from bench.peers.sql import (
    BUSY_TIMEOUT,
    MAX_ID,
    Duplicate,
    Missing,
    NotInGroup,
    Unknown,
    page_body,
    session_body,
)
from storage.postgresql import postgresql_connect_args

__all__ = ["Duplicate", "Missing", "NotInGroup", "Unknown", "connection", "create", "get", "list_page", "review"]

Connection = psycopg.Connection[TupleRow]

SEQUENCE_END = MAX_ID - 1_000_000
"""storage.study_sessions.SEQUENCE_END: past it, the service picks random free ids."""

CONNECT_ARGS = postgresql_connect_args(BUSY_TIMEOUT)
"""The service's own connection arguments for PostgreSQL (storage/engine.py)."""
STATEMENT_TIMEOUT = f"SET statement_timeout = {int(BUSY_TIMEOUT * 1000)}"

# As SQLAlchemy's psycopg dialect compiles storage/*.py for PostgreSQL, line breaks included.
_COLUMNS = (
    "study_sessions.id, study_sessions.group_id, groups.name AS group_name, study_sessions.study_activity_id, "
    "study_activities.name AS study_activity_name, study_sessions.created_at, "
    "coalesce(review_counts.reviews, %(coalesce_1)s::INTEGER) AS review_items_count, "
    "coalesce(review_counts.correct, %(coalesce_2)s::INTEGER) AS correct_count, "
    "coalesce(review_counts.reviews, %(coalesce_1)s::INTEGER) - "
    "coalesce(review_counts.correct, %(coalesce_2)s::INTEGER) AS wrong_count"
)
_JOINS = (
    "FROM study_sessions JOIN groups ON groups.id = study_sessions.group_id "
    "JOIN study_activities ON study_activities.id = study_sessions.study_activity_id "
    "LEFT OUTER JOIN review_counts ON review_counts.study_session_id = study_sessions.id"
)
_ZEROS = {"coalesce_1": 0, "coalesce_2": 0}
NAMES = (
    "SELECT groups.name, study_activities.name AS name_1 \nFROM groups JOIN study_activities "
    "ON study_activities.id = %(study_activity_id)s::BIGINT \nWHERE groups.id = %(group_id)s::BIGINT"
)
EXISTS = "SELECT study_sessions.id \nFROM study_sessions \nWHERE study_sessions.id = %(id)s::BIGINT"
GROUP_EXISTS = "SELECT groups.id \nFROM groups \nWHERE groups.id = %(id_1)s::BIGINT"
ACTIVITY_EXISTS = "SELECT study_activities.id \nFROM study_activities \nWHERE study_activities.id = %(id_1)s::BIGINT"
INSERT = (
    "INSERT INTO study_sessions (id, group_id, study_activity_id, created_at) "
    "VALUES (%(id)s::BIGINT, %(group_id)s::BIGINT, %(study_activity_id)s::BIGINT, "
    "%(created_at)s::TIMESTAMP WITH TIME ZONE) ON CONFLICT (id) DO NOTHING RETURNING study_sessions.id"
)
"""A create with a client-chosen id."""
INSERT_PICKED = (
    "INSERT INTO study_sessions (id, group_id, study_activity_id, created_at) VALUES (CASE WHEN "
    "((SELECT study_sessions_id_seq.last_value \nFROM study_sessions_id_seq) < %(param_1)s::BIGINT) "
    "THEN nextval('study_sessions_id_seq') "
    "ELSE CAST(%(floor_1)s::INTEGER + floor(random() * %(random_1)s::BIGINT) AS BIGINT) END, "
    "%(group_id)s::BIGINT, %(study_activity_id)s::BIGINT, %(created_at)s::TIMESTAMP WITH TIME ZONE) "
    "ON CONFLICT (id) DO NOTHING RETURNING study_sessions.id"
)
"""A create whose id the server picks: the sequence's next value, or a random one past SEQUENCE_END."""
PICKED = {"param_1": SEQUENCE_END, "floor_1": 1, "random_1": MAX_ID - 1}
ADVANCE = (
    "SELECT setval(%(setval_2)s, %(id)s) AS setval_1 \nWHERE %(id)s > (SELECT study_sessions_id_seq.last_value "
    "\nFROM study_sessions_id_seq) AND %(id)s < %(param_1)s::BIGINT"
)
"""After a create with a client-chosen id: the sequence moved past it."""
GET = f"SELECT {_COLUMNS} \n{_JOINS} \nWHERE study_sessions.id = %(id)s::BIGINT"
PAGE = (
    f"SELECT {_COLUMNS} \n{_JOINS} JOIN (SELECT study_sessions.id AS id \nFROM study_sessions "
    "ORDER BY study_sessions.created_at DESC, study_sessions.id DESC \n LIMIT %(limit)s OFFSET %(offset)s) AS anon_1 "
    "ON anon_1.id = study_sessions.id ORDER BY study_sessions.created_at DESC, study_sessions.id DESC"
)
COUNT = (
    "SELECT CAST(coalesce(sum(row_counts.n), %(coalesce_2)s::INTEGER) AS BIGINT) AS coalesce_1 \nFROM row_counts "
    "\nWHERE row_counts.table_name = %(table_name_1)s::VARCHAR"
)
REVIEW = (
    "INSERT INTO review_items (study_session_id, word_id, correct, created_at) SELECT study_sessions.id, "
    "word_groups.word_id, %(correct)s AS anon_1, %(now)s::TIMESTAMP WITH TIME ZONE AS anon_2 \nFROM study_sessions "
    "JOIN word_groups ON word_groups.group_id = study_sessions.group_id \nWHERE study_sessions.id = "
    "%(session)s::BIGINT AND word_groups.word_id = %(word)s::BIGINT RETURNING review_items.id"
)
GROUP_OF = "SELECT study_sessions.group_id \nFROM study_sessions \nWHERE study_sessions.id = %(id)s::BIGINT"
WORD_EXISTS = "SELECT words.id \nFROM words \nWHERE words.id = %(word)s::BIGINT"


def conninfo(url: str) -> str:
    """A SQLAlchemy URL (postgresql+psycopg://...) as libpq takes it."""
    scheme, separator, rest = url.partition("://")
    if not separator or not scheme.startswith("postgresql"):
        raise ValueError(f"the PostgreSQL peers take a postgresql+psycopg:// URL, not {url!r}")
    return f"postgresql://{rest}"


def connect(url: str, *, autocommit: bool = False) -> Connection:
    """A connection set up as storage/engine.py sets up the service's: its TCP timeouts, no
    server-side prepared statements (prepare_threshold None), its statement timeout and its time
    zone, UTC."""
    conn = psycopg.connect(conninfo(url), autocommit=autocommit, **CONNECT_ARGS)
    conn.execute(STATEMENT_TIMEOUT)
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()
    return conn


@functools.cache
def connection() -> Connection:
    """This worker process's one connection, to the database DATABASE_URL names."""
    return connect(os.environ["DATABASE_URL"])


@contextmanager
def _transaction(conn: Connection) -> Iterator[Connection]:
    try:
        yield conn
    except BaseException:
        conn.rollback()
        raise
    conn.commit()


@contextmanager
def _read(conn: Connection) -> Iterator[Connection]:
    """As the service reads (storage/database.py): in autocommit, no BEGIN and COMMIT around the
    statements, which at READ COMMITTED each read a snapshot of their own either way."""
    conn.autocommit = True
    try:
        yield conn
    finally:
        conn.autocommit = False


def instant(value: datetime) -> str:
    """A stored datetime as the service answers it (handlers/shape.py): RFC 3339 UTC, `Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _session(row: tuple[Any, ...]) -> dict[str, Any]:
    return session_body(row, instant)


def create(
    conn: Connection, *, group_id: int, study_activity_id: int, created_at: datetime, id: int | None
) -> dict[str, Any]:
    """Store a new session and answer it as the service does; `Duplicate` or `Unknown` otherwise."""
    with _transaction(conn):
        names = conn.execute(NAMES, {"study_activity_id": study_activity_id, "group_id": group_id}).fetchone()
        if names is None:
            if id is not None and conn.execute(EXISTS, {"id": id}).fetchone() is not None:
                raise Duplicate(f"Study session {id} already exists.")
            raise Unknown(_unknown_references(conn, group_id, study_activity_id))
        stored = _insert(conn, group_id=group_id, study_activity_id=study_activity_id, created_at=created_at, id=id)
        if stored is None:
            raise Duplicate(f"Study session {id} already exists.")
        if id is not None:
            conn.execute(ADVANCE, {"setval_2": "study_sessions_id_seq", "id": id, "param_1": SEQUENCE_END})
    return _session((stored, group_id, names[0], study_activity_id, names[1], created_at, 0, 0, 0))


def _insert(
    conn: Connection, *, group_id: int, study_activity_id: int, created_at: datetime, id: int | None
) -> int | None:
    """The stored id; None if a client-chosen `id` is taken. A server-picked id that a client
    took meanwhile inserts nothing, and the next value is tried, as the service does."""
    values = {"group_id": group_id, "study_activity_id": study_activity_id, "created_at": created_at}
    if id is not None:
        row = conn.execute(INSERT, {"id": id, **values}).fetchone()
        return None if row is None else int(row[0])
    picked = {**PICKED, **values}
    row = conn.execute(INSERT_PICKED, picked).fetchone()
    while row is None:
        row = conn.execute(INSERT_PICKED, picked).fetchone()
    return int(row[0])


def _unknown_references(conn: Connection, group_id: int, study_activity_id: int) -> list[tuple[str, str]]:
    violations = []
    if conn.execute(GROUP_EXISTS, {"id_1": group_id}).fetchone() is None:
        violations.append(("/group_id", f"There is no group with id {group_id}."))
    if conn.execute(ACTIVITY_EXISTS, {"id_1": study_activity_id}).fetchone() is None:
        violations.append(("/study_activity_id", f"There is no study activity with id {study_activity_id}."))
    return violations


def review(conn: Connection, *, study_session_id: int, word_id: int, correct: bool) -> dict[str, Any]:
    """Store a review item and answer it as the service does; `Missing` if there is no such
    session, `NotInGroup` if the word is not in its group."""
    now = datetime.now(UTC)
    values = {"correct": correct, "now": now, "session": study_session_id, "word": word_id}
    with _transaction(conn):
        row = conn.execute(REVIEW, values).fetchone()
        if row is None:
            group = conn.execute(GROUP_OF, {"id": study_session_id}).fetchone()
            if group is None:
                raise Missing(f"There is no study session with id {study_session_id}.")
            if conn.execute(WORD_EXISTS, {"word": word_id}).fetchone() is None:
                raise NotInGroup(f"There is no word with id {word_id}.")
            raise NotInGroup(
                f"Word {word_id} is not in group {group[0]}, the group of study session {study_session_id}."
            )
    return {
        "id": row[0],
        "study_session_id": study_session_id,
        "word_id": word_id,
        "correct": correct,
        "created_at": instant(now),
    }


def get(conn: Connection, id: int) -> dict[str, Any]:
    """The session `id`; `Missing` if there is none."""
    with _read(conn):
        row = conn.execute(GET, {**_ZEROS, "id": id}).fetchone()
        if row is None:
            raise Missing(f"There is no study session with id {id}.")
    return _session(row)


def list_page(conn: Connection, *, page: int, per_page: int) -> dict[str, Any]:
    """Page `page` of the sessions, newest first, as the service's page body."""
    with _read(conn):
        rows = conn.execute(PAGE, {**_ZEROS, "limit": per_page, "offset": (page - 1) * per_page}).fetchall()
        found = conn.execute(COUNT, {"coalesce_2": 0, "table_name_1": "study_sessions"}).fetchone()
    total = int((found[0] if found else None) or 0)
    return page_body([_session(row) for row in rows], total=total, page=page, per_page=per_page)
