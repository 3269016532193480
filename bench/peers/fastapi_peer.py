"""Peer C, what a user would pick instead: FastAPI, a pydantic model for the body, `async def`
endpoints using this worker's one sqlite3 connection straight from the event loop. Responses are
plain dicts, as the service's handlers return them, which FastAPI encodes its own way."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from bench import peers
from bench.peers import sql

db = peers.statements(os.environ.get("DATABASE_URL", ""))

BASE_PATH = "/api/v1"

# The service turns uvicorn's access log off (app.configure_logging); a log line per request
# would be measured here and not there.
logging.getLogger("uvicorn.access").disabled = True

Id = Annotated[int, Field(strict=True, ge=1, le=sql.MAX_ID)]


class StudySessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    group_id: Id
    study_activity_id: Id
    id: Id | None = None
    created_at: AwareDatetime | None = None


class ReviewCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    word_id: Id
    correct: Annotated[bool, Field(strict=True)]


def _problem(status: int, title: str, detail: str, headers: dict[str, str] | None = None, **ext: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "detail": detail, "status": status, **ext}
    return JSONResponse(body, status, headers, media_type="application/problem+json")


def _unprocessable(violations: list[tuple[str, str]]) -> JSONResponse:
    errors = [{"detail": detail, "pointer": pointer} for pointer, detail in violations]
    return _problem(422, "Unprocessable Content", "The request cannot be applied as it stands.", errors=errors)


router = APIRouter(prefix=BASE_PATH)


@router.post("/study-sessions", status_code=201, response_model=None)
async def create_study_session(body: StudySessionCreate, response: Response) -> dict[str, Any] | JSONResponse:
    now = datetime.now(UTC)
    created_at = now
    if body.created_at is not None:
        accepted = sql.accepted_created_at(body.created_at, now)
        if accepted is None:
            return _unprocessable([("/created_at", f"{body.created_at} is more than 300 seconds in the future.")])
        created_at = accepted
    try:
        session = db.create(
            db.connection(),
            id=body.id,
            group_id=body.group_id,
            study_activity_id=body.study_activity_id,
            created_at=created_at,
        )
    except sql.Duplicate as error:
        return _problem(409, "Conflict", str(error), {"Location": f"{BASE_PATH}/study-sessions/{body.id}"})
    except sql.Unknown as error:
        return _unprocessable(error.violations)
    response.headers["Location"] = f"{BASE_PATH}/study-sessions/{session['id']}"
    return session


@router.post("/study-sessions/{id}/reviews", status_code=201, response_model=None)
async def create_review(
    id: Annotated[int, Path(ge=1, le=sql.MAX_ID)], body: ReviewCreate, response: Response
) -> dict[str, Any] | JSONResponse:
    try:
        item = db.review(db.connection(), study_session_id=id, word_id=body.word_id, correct=body.correct)
    except sql.Missing as error:
        return _problem(404, "Not Found", str(error))
    except sql.NotInGroup as error:
        return _unprocessable([("/word_id", str(error))])
    response.headers["Location"] = f"{BASE_PATH}/study-sessions/{id}/reviews/{item['id']}"
    return item


@router.get("/study-sessions/{id}", response_model=None)
async def get_study_session(id: Annotated[int, Path(ge=1, le=sql.MAX_ID)]) -> dict[str, Any] | JSONResponse:
    try:
        return db.get(db.connection(), id)
    except sql.Missing as error:
        return _problem(404, "Not Found", str(error))


@router.get("/study-sessions", response_model=None)
async def list_study_sessions(
    page: Annotated[int, Query(ge=1, le=2**31 - 1)] = 1, per_page: Annotated[int, Query(ge=1, le=100)] = 10
) -> dict[str, Any]:
    return db.list_page(db.connection(), page=page, per_page=per_page)


async def _bad_request(_request: Request, error: Exception) -> JSONResponse:
    """A request that fails validation is a 400 problem, as the service answers it (not FastAPI's 422)."""
    assert isinstance(error, RequestValidationError)
    errors = [
        {"detail": str(e["msg"]), "pointer": "/" + "/".join(str(p) for p in e["loc"][1:])} for e in error.errors()
    ]
    return _problem(400, "Bad Request", f"The request is invalid: {len(errors)} problem(s).", errors=errors)


app = FastAPI()
app.include_router(router)
app.add_exception_handler(RequestValidationError, _bad_request)
