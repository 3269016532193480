"""Operations on /study-activities."""

from __future__ import annotations

from typing import Any

from handlers import shape
from storage import study_activities
from storage.database import Database


async def list_study_activities(
    db: Database, page: int = 1, per_page: int = 10
) -> tuple[dict[str, Any], int, dict[str, str]]:
    return shape.page(await db.read(study_activities.list_page, page=page, per_page=per_page)), 200, shape.JSON
