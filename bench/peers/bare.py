"""Peer B, the practical limit: a bare Starlette app on the stdlib sqlite3 module. Its endpoints
are `async def` and use this worker's one connection straight from the event loop; validation is
by hand and just enough to refuse what a client could get wrong."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from bench import peers
from bench.peers import sql

db = peers.statements(os.environ.get("DATABASE_URL", ""))

BASE_PATH = "/api/v1"
MAX_BODY_BYTES = 16384
MAX_PAGE = 2**31 - 1
FIELDS = ("id", "group_id", "study_activity_id", "created_at")
REVIEW_FIELDS = ("word_id", "correct")

# The service turns uvicorn's access log off (app.configure_logging); a log line per request
# would be measured here and not there.
logging.getLogger("uvicorn.access").disabled = True


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # json.dumps with a newline, as Connexion writes the service's bodies: the same bytes.
    return Response(json.dumps(body) + "\n", status, headers, media_type="application/json")


def _problem(status: int, title: str, detail: str, **ext: Any) -> Response:
    body = {"type": "about:blank", "title": title, "detail": detail, "status": status, **ext}
    return Response(json.dumps(body) + "\n", status, media_type="application/problem+json")


def _bad_request(detail: str, errors: list[dict[str, str]]) -> Response:
    return _problem(400, "Bad Request", detail, errors=errors)


def _is_id(value: Any) -> bool:
    return type(value) is int and 1 <= value <= sql.MAX_ID


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _shape_violations(body: Any, fields: tuple[str, ...], required: tuple[str, ...]) -> list[dict[str, str]]:
    """What is wrong with `body`'s shape: not an object, properties not in `fields`, `required` ones missing."""
    if not isinstance(body, dict):
        return [{"detail": "The body must be a JSON object.", "pointer": ""}]
    errors = [
        {"detail": f"{name!r} is not a property this operation takes.", "pointer": f"/{name}"}
        for name in body
        if name not in fields
    ]
    return errors + [
        {"detail": f"'{name}' is a required property.", "pointer": f"/{name}"} for name in required if name not in body
    ]


def _violations(body: Any) -> list[dict[str, str]]:
    errors = _shape_violations(body, FIELDS, ("group_id", "study_activity_id"))
    if not isinstance(body, dict):
        return errors
    errors += [
        {"detail": f"{body[name]!r} is not an id (an integer from 1 to 2**63-1).", "pointer": f"/{name}"}
        for name in ("id", "group_id", "study_activity_id")
        if name in body and not _is_id(body[name])
    ]
    if "created_at" in body and _aware(body["created_at"]) is None:
        errors.append({"detail": f"{body['created_at']!r} is not an RFC 3339 date-time.", "pointer": "/created_at"})
    return errors


async def _json_body(request: Request, violations: Callable[[Any], list[dict[str, str]]]) -> Any:
    """The request's JSON body, or the problem response that refuses it."""
    if request.headers.get("content-type", "").partition(";")[0].strip().lower() != "application/json":
        return _problem(415, "Unsupported Media Type", "Send the body as application/json.")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        return _problem(413, "Content Too Large", f"The request body is larger than {MAX_BODY_BYTES} bytes.")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        return _bad_request("The request body is not valid JSON.", [{"detail": str(error), "pointer": ""}])
    errors = violations(body)
    if errors:
        return _bad_request(f"The request body is invalid: {len(errors)} problem(s).", errors)
    return body


async def create_study_session(request: Request) -> Response:
    body = await _json_body(request, _violations)
    if isinstance(body, Response):
        return body
    now = datetime.now(UTC)
    created_at = now
    if "created_at" in body:
        accepted = sql.accepted_created_at(_aware(body["created_at"]) or now, now)
        if accepted is None:
            detail = f"{body['created_at']!r} is more than 300 seconds in the future."
            return _unprocessable([("/created_at", detail)])
        created_at = accepted
    try:
        session = db.create(
            db.connection(),
            id=body.get("id"),
            group_id=body["group_id"],
            study_activity_id=body["study_activity_id"],
            created_at=created_at,
        )
    except sql.Duplicate as error:
        response = _problem(409, "Conflict", str(error))
        response.headers["Location"] = f"{BASE_PATH}/study-sessions/{body['id']}"
        return response
    except sql.Unknown as error:
        return _unprocessable(error.violations)
    return _json(session, 201, {"Location": f"{BASE_PATH}/study-sessions/{session['id']}"})


def _unprocessable(violations: list[tuple[str, str]]) -> Response:
    errors = [{"detail": detail, "pointer": pointer} for pointer, detail in violations]
    return _problem(422, "Unprocessable Content", "The request cannot be applied as it stands.", errors=errors)


def _review_violations(body: Any) -> list[dict[str, str]]:
    errors = _shape_violations(body, REVIEW_FIELDS, REVIEW_FIELDS)
    if not isinstance(body, dict):
        return errors
    if "word_id" in body and not _is_id(body["word_id"]):
        errors.append({"detail": f"{body['word_id']!r} is not an id.", "pointer": "/word_id"})
    if "correct" in body and type(body["correct"]) is not bool:
        errors.append({"detail": f"{body['correct']!r} is not a boolean.", "pointer": "/correct"})
    return errors


def _bad_id() -> Response:
    return _bad_request(
        "The request's parameters are invalid: 1 problem(s).", [{"detail": "Not an id.", "parameter": "id"}]
    )


async def create_review(request: Request) -> Response:
    id = request.path_params["id"]
    if not _is_id(id):
        return _bad_id()
    body = await _json_body(request, _review_violations)
    if isinstance(body, Response):
        return body
    try:
        item = db.review(db.connection(), study_session_id=id, word_id=body["word_id"], correct=body["correct"])
    except sql.Missing as error:
        return _problem(404, "Not Found", str(error))
    except sql.NotInGroup as error:
        return _unprocessable([("/word_id", str(error))])
    return _json(item, 201, {"Location": f"{BASE_PATH}/study-sessions/{id}/reviews/{item['id']}"})


async def get_study_session(request: Request) -> Response:
    id = request.path_params["id"]
    if not _is_id(id):
        return _bad_id()
    try:
        return _json(db.get(db.connection(), id))
    except sql.Missing as error:
        return _problem(404, "Not Found", str(error))


def _query_int(request: Request, name: str, default: int, top: int) -> int | None:
    text = request.query_params.get(name)
    if text is None:
        return default
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= top:
        return None
    return int(text)


async def list_study_sessions(request: Request) -> Response:
    page = _query_int(request, "page", 1, MAX_PAGE)
    per_page = _query_int(request, "per_page", 10, 100)
    if page is None or per_page is None:
        errors = [
            {"detail": "Not a whole number in range.", "parameter": name}
            for name, value in (("page", page), ("per_page", per_page))
            if value is None
        ]
        return _bad_request(f"The request's parameters are invalid: {len(errors)} problem(s).", errors)
    return _json(db.list_page(db.connection(), page=page, per_page=per_page))


app = Starlette(
    routes=[
        Mount(
            BASE_PATH,
            routes=[
                Route("/study-sessions", create_study_session, methods=["POST"]),
                Route("/study-sessions", list_study_sessions, methods=["GET"]),
                Route("/study-sessions/{id:int}", get_study_session, methods=["GET"]),
                Route("/study-sessions/{id:int}/reviews", create_review, methods=["POST"]),
            ],
        )
    ]
)
