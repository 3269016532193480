"""Queries on study activities."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from storage.compiled import Compiled
from storage.pages import Page, count_of, fetch_page, paged
from storage.schema import study_activities


@dataclass(frozen=True)
class StudyActivity:
    id: int
    name: str
    url: str
    preview_url: str


_by_id = select(study_activities).order_by(study_activities.c.id)
_page, _total = Compiled(paged(_by_id)), Compiled(count_of(_by_id))


def list_page(conn: Connection, *, page: int, per_page: int) -> Page[StudyActivity]:
    """Study activities by id."""
    return fetch_page(conn, _page, _total, page=page, per_page=per_page, to_item=lambda row: StudyActivity(*row))
