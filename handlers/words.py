"""Operations on /groups/{id}/words."""

from __future__ import annotations

from typing import Any

from handlers import shape
from storage import words
from storage.database import Database


async def list_group_words(
    id: int, db: Database, page: int = 1, per_page: int = 10
) -> tuple[dict[str, Any], int, dict[str, str]]:
    return shape.page(await db.read(words.list_page, group_id=id, page=page, per_page=per_page)), 200, shape.JSON
