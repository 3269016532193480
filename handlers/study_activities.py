"""Operations on /study-activities."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from handlers import shape
from storage import study_activities
from storage.engine import transaction


def list_study_activities(db: Engine, page: int = 1, per_page: int = 10) -> tuple[dict[str, Any], int, dict[str, str]]:
    with transaction(db) as conn:
        return shape.page(study_activities.list_page(conn, page=page, per_page=per_page)), 200, shape.JSON
