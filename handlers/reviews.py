"""Operations on /study-sessions/{id}/reviews."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from handlers import shape, writes
from storage import idempotency, reviews
from storage.database import Database


async def create_review(
    id: int, body: dict[str, Any], db: Database, base_path: str, context_: dict[str, Any]
) -> tuple[dict[str, Any], int, dict[str, str]]:
    now = datetime.now(UTC)

    def create(conn: Connection) -> idempotency.Response:
        item = reviews.create(conn, study_session_id=id, word_id=body["word_id"], correct=body["correct"], now=now)
        return writes.created(item, f"{base_path}/study-sessions/{id}/reviews/{item.id}")

    return await writes.answer(db, context_, {**body, "study_session_id": id}, now, create)


async def get_review(id: int, review_id: int, db: Database) -> tuple[dict[str, Any], int, dict[str, str]]:
    return shape.item(await db.read(reviews.get, study_session_id=id, id=review_id)), 200, shape.JSON


async def list_reviews(
    id: int, db: Database, page: int = 1, per_page: int = 10
) -> tuple[dict[str, Any], int, dict[str, str]]:
    found = await db.read(reviews.list_page, study_session_id=id, page=page, per_page=per_page)
    return shape.page(found), 200, shape.JSON
