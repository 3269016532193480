"""Queries on words, by group, with how often learners got each right and wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from storage.compiled import Compiled
from storage.errors import NotFound
from storage.pages import Page, count_of, fetch_page, paged
from storage.schema import groups, word_groups, word_review_counts, words


@dataclass(frozen=True)
class Word:
    id: int
    kanji: str
    romaji: str
    english: str
    parts: list[dict[str, Any]]
    correct_count: int
    wrong_count: int


_correct = func.coalesce(word_review_counts.c.correct, 0)
_of_group = (
    select(
        words,
        _correct.label("correct_count"),
        (func.coalesce(word_review_counts.c.reviews, 0) - _correct).label("wrong_count"),
    )
    .join(word_groups, word_groups.c.word_id == words.c.id)
    .outerjoin(word_review_counts, word_review_counts.c.word_id == words.c.id)
    .where(word_groups.c.group_id == bindparam("group"))
    .order_by(words.c.id)
)
_page, _total = Compiled(paged(_of_group)), Compiled(count_of(_of_group))
_group = select(groups.c.id).where(groups.c.id == bindparam("group"))


def list_page(conn: Connection, *, group_id: int, page: int, per_page: int) -> Page[Word]:
    """The group's words by id, with their counts; `NotFound` if there is no such group."""
    if conn.execute(_group, {"group": group_id}).first() is None:
        raise NotFound(f"There is no group with id {group_id}.")
    return fetch_page(
        conn,
        _page,
        _total,
        page=page,
        per_page=per_page,
        to_item=lambda row: Word(*row),
        params={"group": group_id},
    )
