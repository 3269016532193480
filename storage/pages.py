"""One page of a query's rows, with the count of the whole list."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import BigInteger, Connection, Select, Table, bindparam, cast, func, select

from storage.compiled import Compiled
from storage.schema import row_counts

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
    query: Compiled,
    total: Compiled,
    *,
    page: int,
    per_page: int,
    to_item: Callable[[Sequence[Any]], T],
    params: Mapping[str, Any] | None = None,
) -> Page[T]:
    """The page numbered `page` (from 1) of `query`, an ordered query whose range of rows is the
    bound parameters `limit` and `offset` (see `paged`), in a list as long as `total` answers (0
    where it finds no row); both take `params` as well."""
    params = dict(params or {})
    rows = query.all(conn, {**params, "limit": per_page, "offset": (page - 1) * per_page})
    counted = total.first(conn, params)
    return Page([to_item(row) for row in rows], int(counted[0] or 0) if counted else 0, page, per_page)


def paged(query: Select[Any]) -> Select[Any]:
    """`query` limited to the rows that `fetch_page` asks for."""
    return query.limit(bindparam("limit")).offset(bindparam("offset"))


def count_of(query: Select[Any]) -> Select[Any]:
    """How many rows `query` has, counted."""
    return select(func.count()).select_from(query.order_by(None).subquery())


def counted(table: Table) -> Select[Any]:
    """How many rows `table` has, as its triggers keep it in row_counts (one row to read, where
    count(*) reads them all)."""
    total = cast(func.coalesce(func.sum(row_counts.c.n), 0), BigInteger())  # PostgreSQL sums to numeric
    return select(total).where(row_counts.c.table_name == table.name)
