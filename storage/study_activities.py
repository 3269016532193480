"""Queries on study activities."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from storage.pages import Page, fetch_page
from storage.schema import study_activities


@dataclass(frozen=True)
class StudyActivity:
    id: int
    name: str
    url: str
    preview_url: str


def list_page(conn: Connection, *, page: int, per_page: int) -> Page[StudyActivity]:
    """Study activities by id."""
    query = select(study_activities).order_by(study_activities.c.id)
    return fetch_page(conn, query, page=page, per_page=per_page, to_item=lambda row: StudyActivity(**row._mapping))
