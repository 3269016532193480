"""One page of a query's rows, with the count of the whole list."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, Select, func, select

T = TypeVar("T")


@dataclass(frozen=True)
class Page(Generic[T]):
    """Rows `(page - 1) * per_page` onwards of a list that holds `total` rows."""

    items: list[T]
    total: int
    page: int
    per_page: int

    @property
    def total_pages(self) -> int:
        return -(-self.total // self.per_page)


def fetch_page(
    conn: Connection,
    query: Select[Any],
    *,
    page: int,
    per_page: int,
    to_item: Callable[[Any], T],
) -> Page[T]:
    """The page of `query` (already ordered) numbered `page`, from 1."""
    total = conn.execute(select(func.count()).select_from(query.order_by(None).subquery())).scalar_one()
    rows = conn.execute(query.limit(per_page).offset((page - 1) * per_page))
    return Page([to_item(row) for row in rows], total, page, per_page)
