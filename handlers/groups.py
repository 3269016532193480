"""Operations on /groups."""

from __future__ import annotations

from typing import Any

from handlers import shape
from storage import groups
from storage.database import Database


async def list_groups(db: Database, page: int = 1, per_page: int = 10) -> tuple[dict[str, Any], int, dict[str, str]]:
    return shape.page(await db.read(groups.list_page, page=page, per_page=per_page)), 200, shape.JSON
