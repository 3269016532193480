"""Queries on study sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, Connection, bindparam, case, cast, column, func, select, table
from sqlalchemy.dialects import postgresql, sqlite

from storage.compiled import Compiled
from storage.errors import Duplicate, NotFound, Unprocessable, Violation
from storage.pages import Page, counted, fetch_page, paged
from storage.schema import groups, review_counts, study_activities, study_sessions, study_sessions_id_seq

MAX_CLOCK_SKEW = timedelta(seconds=300)
"""How far ahead of the server's clock a client's `created_at` may be."""
OLDEST = datetime(1, 1, 2, tzinfo=UTC)
"""The oldest `created_at` taken: a day after the oldest datetime, so that a session in any time
zone (offsets are under a day) can still read it back, with or without the UTC pin."""


@dataclass(frozen=True)
class StudySession:
    id: int
    group_id: int
    group_name: str
    study_activity_id: int
    study_activity_name: str
    created_at: datetime
    review_items_count: int = 0
    correct_count: int = 0
    wrong_count: int = 0


# The review counts come with the session, from the rows triggers keep (migration 0005).
_reviews = func.coalesce(review_counts.c.reviews, 0)
_correct = func.coalesce(review_counts.c.correct, 0)
_joined = (
    select(
        study_sessions.c.id,
        study_sessions.c.group_id,
        groups.c.name.label("group_name"),
        study_sessions.c.study_activity_id,
        study_activities.c.name.label("study_activity_name"),
        study_sessions.c.created_at,
        _reviews.label("review_items_count"),
        _correct.label("correct_count"),
        (_reviews - _correct).label("wrong_count"),
    )
    .join(groups, groups.c.id == study_sessions.c.group_id)
    .join(study_activities, study_activities.c.id == study_sessions.c.study_activity_id)
    .outerjoin(review_counts, review_counts.c.study_session_id == study_sessions.c.id)
)


def _from_row(row: Sequence[Any]) -> StudySession:
    return StudySession(*row)


def parse_created_at(text: str, *, now: datetime) -> datetime:
    """`text`, an RFC 3339 date-time, as an aware UTC datetime; `Unprocessable` if no datetime
    can hold it, it is before OLDEST, or it is more than MAX_CLOCK_SKEW after `now`."""
    try:
        # RFC 3339 allows a lower-case "t" and "z"; fromisoformat does not.
        instant = datetime.fromisoformat(text.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise Unprocessable([Violation("/created_at", f"{text!r} is not an instant this service can store.")]) from None
    if instant < OLDEST:
        raise Unprocessable(
            [Violation("/created_at", f"{text!r} is before 0001-01-02T00:00:00Z, the oldest instant taken.")]
        )
    if instant > now + MAX_CLOCK_SKEW:
        raise Unprocessable(
            [Violation("/created_at", f"{text!r} is more than {MAX_CLOCK_SKEW.seconds} seconds in the future.")]
        )
    return instant


MAX_ID = 2**63 - 1
SEQUENCE_END = MAX_ID - 1_000_000
"""On PostgreSQL, where the sequence stops and server-picked ids become random free ones (as
SQLite's rowid does at MAX_ID): short of MAX_ID, so that concurrent writers never run it out."""

_names = Compiled(
    select(groups.c.name, study_activities.c.name)
    .join_from(groups, study_activities, study_activities.c.id == bindparam("study_activity_id"))
    .where(groups.c.id == bindparam("group_id"))
)
_exists = select(study_sessions.c.id).where(study_sessions.c.id == bindparam("id"))

# SQLite: an id of NULL makes the database pick (its rowid rule). PostgreSQL: the sequence, moved
# past client-chosen ids (_advance); one a client took meanwhile inserts nothing, and the next
# value is tried: each try takes a new value, so it ends.
_sequence = table("study_sessions_id_seq", column("last_value", BigInteger()))
_last_value = select(_sequence.c.last_value).scalar_subquery()
_next_id = case(
    (_last_value < SEQUENCE_END, study_sessions_id_seq.next_value()),
    else_=cast(1 + func.floor(func.random() * (MAX_ID - 1)), BigInteger()),
)
_pg_insert = postgresql.insert(study_sessions)
_inserts = {
    key: Compiled(insert.returning(study_sessions.c.id))
    for key, insert in (
        (("sqlite", False), sqlite.insert(study_sessions).on_conflict_do_nothing(index_elements=["id"])),
        (("postgresql", False), _pg_insert.on_conflict_do_nothing(index_elements=["id"])),
        (("postgresql", True), _pg_insert.values(id=_next_id).on_conflict_do_nothing(index_elements=["id"])),
    )
}
_advance = select(func.setval(study_sessions_id_seq.name, bindparam("id"))).where(
    bindparam("id") > _last_value, bindparam("id") < SEQUENCE_END
)


def create(
    conn: Connection,
    *,
    group_id: int,
    study_activity_id: int,
    created_at: datetime,
    id: int | None = None,
) -> StudySession:
    """Store a new session; `Duplicate` if `id` is taken, `Unprocessable` if the group or the
    activity does not exist. Nothing is stored when it raises."""
    names = _names.first(conn, {"group_id": group_id, "study_activity_id": study_activity_id})
    if names is None:
        if id is not None and conn.execute(_exists, {"id": id}).first() is not None:
            raise Duplicate(f"Study session {id} already exists.", existing_id=id)  # 409 before 422
        raise Unprocessable(_unknown_references(conn, group_id, study_activity_id))
    postgres = conn.dialect.name == "postgresql"
    insert = _inserts[conn.dialect.name, postgres and id is None]
    values = {"id": id, "group_id": group_id, "study_activity_id": study_activity_id, "created_at": created_at}
    stored = insert.scalar(conn, values)
    while stored is None and id is None and postgres:
        stored = insert.scalar(conn, values)
    if stored is None:
        raise Duplicate(f"Study session {id} already exists.", existing_id=id or 0)
    if id is not None and postgres:
        conn.execute(_advance, {"id": id})
    return StudySession(stored, group_id, names[0], study_activity_id, names[1], created_at)


def _unknown_references(conn: Connection, group_id: int, study_activity_id: int) -> list[Violation]:
    missing = []
    if conn.execute(select(groups.c.id).where(groups.c.id == group_id)).first() is None:
        missing.append(Violation("/group_id", f"There is no group with id {group_id}."))
    if conn.execute(select(study_activities.c.id).where(study_activities.c.id == study_activity_id)).first() is None:
        missing.append(Violation("/study_activity_id", f"There is no study activity with id {study_activity_id}."))
    return missing


_by_id = Compiled(_joined.where(study_sessions.c.id == bindparam("id")))


def get(conn: Connection, id: int) -> StudySession:
    """The session `id`; `NotFound` if there is none."""
    row = _by_id.first(conn, {"id": id})
    if row is None:
        raise NotFound(f"There is no study session with id {id}.")
    return _from_row(row)


def list_page(conn: Connection, *, page: int, per_page: int) -> Page[StudySession]:
    """Sessions newest first (by `created_at`, then by `id`)."""
    return fetch_page(conn, _newest_first, _total, page=page, per_page=per_page, to_item=_from_row)


_order = (study_sessions.c.created_at.desc(), study_sessions.c.id.desc())
# The page's ids first, from the (created_at, id) index alone, then the joins for those rows
# only: a deep page skips index entries, not joined rows.
_page_ids = paged(select(study_sessions.c.id).order_by(*_order)).subquery()
_newest_first = Compiled(_joined.join(_page_ids, _page_ids.c.id == study_sessions.c.id).order_by(*_order))
_total = Compiled(counted(study_sessions))


def group_of(conn: Connection, id: int) -> int:
    """The group of session `id`; `NotFound` if there is none."""
    group_id = conn.execute(_group_of, {"id": id}).scalar()
    if group_id is None:
        raise NotFound(f"There is no study session with id {id}.")
    return int(group_id)


_group_of = select(study_sessions.c.group_id).where(study_sessions.c.id == bindparam("id"))
