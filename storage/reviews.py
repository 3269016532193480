"""Queries on the review items of study sessions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from storage import study_sessions
from storage.compiled import Compiled
from storage.errors import NotFound, Unprocessable, Violation
from storage.pages import Page, fetch_page, paged
from storage.schema import review_counts, review_items, word_groups, words
from storage.schema import study_sessions as sessions


@dataclass(frozen=True)
class ReviewItem:
    id: int
    study_session_id: int
    word_id: int
    correct: bool
    created_at: datetime


# One statement: the row exists only if the session exists and the word is in its group.
_in_group = (
    select(
        sessions.c.id,
        word_groups.c.word_id,
        bindparam("correct"),
        bindparam("now", type_=review_items.c.created_at.type),
    )
    .join_from(sessions, word_groups, word_groups.c.group_id == sessions.c.group_id)
    .where(sessions.c.id == bindparam("session"), word_groups.c.word_id == bindparam("word"))
)
_columns = ["study_session_id", "word_id", "correct", "created_at"]
_inserts = {
    "sqlite": sqlite.insert(review_items).from_select(_columns, _in_group).returning(review_items.c.id),
    "postgresql": postgresql.insert(review_items).from_select(_columns, _in_group).returning(review_items.c.id),
}
_word = select(words.c.id).where(words.c.id == bindparam("word"))


def create(conn: Connection, *, study_session_id: int, word_id: int, correct: bool, now: datetime) -> ReviewItem:
    """Store the learner's answer for `word_id` in the session; `NotFound` if there is no such
    session, `Unprocessable` if the word does not exist or is not in the session's group."""
    values = {"session": study_session_id, "word": word_id, "correct": correct, "now": now}
    stored = conn.execute(_inserts[conn.dialect.name], values).scalar()
    if stored is not None:
        return ReviewItem(stored, study_session_id, word_id, correct, now)
    group_id = study_sessions.group_of(conn, study_session_id)  # NotFound first: the URL is wrong
    if conn.execute(_word, {"word": word_id}).first() is None:
        raise Unprocessable([Violation("/word_id", f"There is no word with id {word_id}.")])
    raise Unprocessable(
        [
            Violation(
                "/word_id", f"Word {word_id} is not in group {group_id}, the group of study session {study_session_id}."
            )
        ]
    )


_of_session = review_items.c.study_session_id == bindparam("session")
_one = select(review_items).where(_of_session, review_items.c.id == bindparam("review"))
_page = Compiled(paged(select(review_items).where(_of_session).order_by(review_items.c.id)))
_total = Compiled(select(review_counts.c.reviews).where(review_counts.c.study_session_id == bindparam("session")))


def get(conn: Connection, *, study_session_id: int, id: int) -> ReviewItem:
    """The review item `id` of the session; `NotFound` if there is none."""
    row = conn.execute(_one, {"session": study_session_id, "review": id}).first()
    if row is None:
        raise NotFound(f"Study session {study_session_id} has no review item with id {id}.")
    return _item(row)


def list_page(conn: Connection, *, study_session_id: int, page: int, per_page: int) -> Page[ReviewItem]:
    """The session's review items in the order they were given; `NotFound` if there is no session."""
    study_sessions.group_of(conn, study_session_id)
    params = {"session": study_session_id}
    return fetch_page(conn, _page, _total, page=page, per_page=per_page, to_item=_item, params=params)


def _item(row: Sequence[Any]) -> ReviewItem:
    return ReviewItem(*row)
