"""Operations for the platform that runs the service: /healthz, /readyz, /metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from handlers import shape
from storage import migrate
from storage.database import Database
from storage.errors import SchemaOutOfDate


async def get_health() -> tuple[dict[str, Any], int, dict[str, str]]:
    return {"status": "ok"}, 200, shape.JSON


async def get_readiness(db: Database) -> tuple[dict[str, Any], int, dict[str, str]]:
    revision = await db.read(migrate.revision)
    if revision != migrate.HEAD:
        raise SchemaOutOfDate(f"The database's schema is at revision {revision}; this code needs {migrate.HEAD}.")
    return {"status": "ready", "database_revision": revision}, 200, shape.JSON


async def get_metrics(metrics: Callable[[], tuple[bytes, str]]) -> tuple[bytes, int, dict[str, str]]:
    body, media_type = metrics()
    return body, 200, {"Content-Type": media_type}
