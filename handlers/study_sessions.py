"""Operations on /study-sessions."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from handlers import shape, writes
from storage import idempotency, study_sessions
from storage.database import Database

log = logging.getLogger(__name__)


async def create_study_session(
    body: dict[str, Any], db: Database, base_path: str, context_: dict[str, Any]
) -> tuple[dict[str, Any], int, dict[str, str]]:
    now = datetime.now(UTC)
    given = body.get("created_at")
    created_at = study_sessions.parse_created_at(given, now=now) if given is not None else now

    def create(conn: Connection) -> idempotency.Response:
        session = study_sessions.create(
            conn,
            id=body.get("id"),
            group_id=body["group_id"],
            study_activity_id=body["study_activity_id"],
            created_at=created_at,
        )
        log.info("study session created", extra={"study_session_id": session.id})
        return writes.created(session, f"{base_path}/study-sessions/{session.id}")

    return await writes.answer(db, context_, body, now, create)


async def get_study_session(id: int, db: Database) -> tuple[dict[str, Any], int, dict[str, str]]:
    return shape.item(await db.read(study_sessions.get, id)), 200, shape.JSON


async def list_study_sessions(
    db: Database, page: int = 1, per_page: int = 10
) -> tuple[dict[str, Any], int, dict[str, str]]:
    return shape.page(await db.read(study_sessions.list_page, page=page, per_page=per_page)), 200, shape.JSON
