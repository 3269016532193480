"""Queries on study sessions."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, exc, func, insert, select

from storage.errors import Duplicate, NotFound, Unavailable, Unprocessable, Violation
from storage.pages import Page, fetch_page
from storage.schema import groups, study_activities, study_sessions

MAX_ID = 2**63 - 1
ID_ATTEMPTS = 5
MAX_CLOCK_SKEW = timedelta(seconds=300)
"""How far ahead of the server's clock a client's `created_at` may be."""


@dataclass(frozen=True)
class StudySession:
    id: int
    group_id: int
    group_name: str
    study_activity_id: int
    study_activity_name: str
    created_at: datetime


_joined = (
    select(
        study_sessions.c.id,
        study_sessions.c.group_id,
        groups.c.name.label("group_name"),
        study_sessions.c.study_activity_id,
        study_activities.c.name.label("study_activity_name"),
        study_sessions.c.created_at,
    )
    .join(groups, groups.c.id == study_sessions.c.group_id)
    .join(study_activities, study_activities.c.id == study_sessions.c.study_activity_id)
)


def _from_row(row: Any) -> StudySession:
    return StudySession(**row._mapping)


def parse_created_at(text: str, *, now: datetime) -> datetime:
    """`text`, an RFC 3339 date-time, as an aware UTC datetime; `Unprocessable` if no datetime
    can hold it or it is more than MAX_CLOCK_SKEW after `now`."""
    try:
        # RFC 3339 allows a lower-case "t" and "z"; fromisoformat does not.
        instant = datetime.fromisoformat(text.upper()).astimezone(UTC)
    except (ValueError, OverflowError):
        raise Unprocessable([Violation("/created_at", f"{text!r} is not an instant this service can store.")]) from None
    if instant > now + MAX_CLOCK_SKEW:
        raise Unprocessable(
            [Violation("/created_at", f"{text!r} is more than {MAX_CLOCK_SKEW.seconds} seconds in the future.")]
        )
    return instant


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
    if id is not None and _exists(conn, id):
        raise Duplicate(f"Study session {id} already exists.", existing_id=id)
    group_name = conn.execute(select(groups.c.name).where(groups.c.id == group_id)).scalar()
    activity_name = conn.execute(
        select(study_activities.c.name).where(study_activities.c.id == study_activity_id)
    ).scalar()
    missing = []
    if group_name is None:
        missing.append(Violation("/group_id", f"There is no group with id {group_id}."))
    if activity_name is None:
        missing.append(Violation("/study_activity_id", f"There is no study activity with id {study_activity_id}."))
    if group_name is None or activity_name is None:
        raise Unprocessable(missing)
    values = {"group_id": group_id, "study_activity_id": study_activity_id, "created_at": created_at}
    for _attempt in range(ID_ATTEMPTS):
        chosen = id if id is not None else _free_id(conn)
        try:
            with conn.begin_nested():
                conn.execute(insert(study_sessions).values(id=chosen, **values))
        except exc.IntegrityError:
            if not _exists(conn, chosen):
                raise  # not the key: a reference vanished under us, which nothing here does
            if id is not None:
                raise Duplicate(f"Study session {id} already exists.", existing_id=id) from None
            continue  # a concurrent writer took the id we picked: pick again
        return StudySession(chosen, group_id, group_name, study_activity_id, activity_name, created_at)
    raise Unavailable(f"No free id found in {ID_ATTEMPTS} attempts; too many concurrent writers.")


def _free_id(conn: Connection) -> int:
    """The largest id plus one or, once MAX_ID is taken, a random free one (SQLite's rowid rule,
    on every dialect): so a client-chosen id never makes a server-picked one collide."""
    top = conn.execute(select(func.max(study_sessions.c.id))).scalar() or 0
    if top < MAX_ID:
        return int(top) + 1
    while True:
        candidate = secrets.randbelow(MAX_ID) + 1
        if not _exists(conn, candidate):
            return candidate


def _exists(conn: Connection, id: int) -> bool:
    return conn.execute(select(study_sessions.c.id).where(study_sessions.c.id == id)).first() is not None


def get(conn: Connection, id: int) -> StudySession:
    """The session `id`; `NotFound` if there is none."""
    row = conn.execute(_joined.where(study_sessions.c.id == id)).first()
    if row is None:
        raise NotFound(f"There is no study session with id {id}.")
    return _from_row(row)


def list_page(conn: Connection, *, page: int, per_page: int) -> Page[StudySession]:
    """Sessions newest first (by `created_at`, then by `id`)."""
    query = _joined.order_by(study_sessions.c.created_at.desc(), study_sessions.c.id.desc())
    return fetch_page(conn, query, page=page, per_page=per_page, to_item=_from_row)
