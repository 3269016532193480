"""Operations on /study-sessions."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from handlers import shape
from storage import study_sessions
from storage.engine import transaction

log = logging.getLogger(__name__)


def create_study_session(
    body: dict[str, Any], db: Engine, base_path: str
) -> tuple[dict[str, Any], int, dict[str, str]]:
    now = datetime.now(UTC)
    given = body.get("created_at")
    created_at = study_sessions.parse_created_at(given, now=now) if given is not None else now
    with transaction(db, write=True) as conn:
        session = study_sessions.create(
            conn,
            id=body.get("id"),
            group_id=body["group_id"],
            study_activity_id=body["study_activity_id"],
            created_at=created_at,
        )
    log.info("study session created", extra={"study_session_id": session.id})
    return shape.item(session), 201, {**shape.JSON, "Location": f"{base_path}/study-sessions/{session.id}"}


def get_study_session(id: int, db: Engine) -> tuple[dict[str, Any], int, dict[str, str]]:
    with transaction(db) as conn:
        return shape.item(study_sessions.get(conn, id)), 200, shape.JSON


def list_study_sessions(db: Engine, page: int = 1, per_page: int = 10) -> tuple[dict[str, Any], int, dict[str, str]]:
    with transaction(db) as conn:
        return shape.page(study_sessions.list_page(conn, page=page, per_page=per_page)), 200, shape.JSON
