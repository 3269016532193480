"""Queries on word groups."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from storage.pages import Page, fetch_page
from storage.schema import groups


@dataclass(frozen=True)
class Group:
    id: int
    name: str


def list_page(conn: Connection, *, page: int, per_page: int) -> Page[Group]:
    """Groups by id."""
    query = select(groups.c.id, groups.c.name).order_by(groups.c.id)
    return fetch_page(conn, query, page=page, per_page=per_page, to_item=lambda row: Group(**row._mapping))
