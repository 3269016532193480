"""The apps the service is measured against, on the same SQL (sql.py): `bare` (Starlette and
sqlite3, the practical limit) and `fastapi_peer` (FastAPI and pydantic, what a user would pick
instead). Both serve /api/v1/study-sessions with the service's status codes and bodies."""

from __future__ import annotations

import importlib
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast


class Statements(Protocol):
    """What a peer calls to run the service's SQL: the functions of sql.py and of pg.py."""

    def connection(self) -> Any: ...

    def create(
        self, conn: Any, *, group_id: int, study_activity_id: int, created_at: datetime, id: int | None
    ) -> dict[str, Any]: ...

    def review(self, conn: Any, *, study_session_id: int, word_id: int, correct: bool) -> dict[str, Any]: ...

    def get(self, conn: Any, id: int) -> dict[str, Any]: ...

    def list_page(self, conn: Any, *, page: int, per_page: int) -> dict[str, Any]: ...


def statements(database_url: str) -> Statements:
    """The module that runs the service's SQL on the database `database_url` names: pg.py for
    PostgreSQL, sql.py otherwise. Imported on demand, so that a peer on SQLite never loads
    psycopg (about 11 MB of resident memory, which the memory benchmark would count)."""
    name = "bench.peers.pg" if database_url.startswith("postgresql") else "bench.peers.sql"
    return cast(Statements, importlib.import_module(name))


if TYPE_CHECKING:
    # mypy checks that both modules have what `Statements` promises.
    from bench.peers import pg, sql

    _checked: tuple[Statements, Statements] = (sql, pg)
