"""Queries on word groups."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from storage.compiled import Compiled
from storage.pages import Page, count_of, fetch_page, paged
from storage.schema import groups


@dataclass(frozen=True)
class Group:
    id: int
    name: str


_by_id = select(groups.c.id, groups.c.name).order_by(groups.c.id)
_page, _total = Compiled(paged(_by_id)), Compiled(count_of(_by_id))


def list_page(conn: Connection, *, page: int, per_page: int) -> Page[Group]:
    """Groups by id."""
    return fetch_page(conn, _page, _total, page=page, per_page=per_page, to_item=lambda row: Group(*row))
