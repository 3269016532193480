"""Before anything is measured: every app answers as the service does, or the run stops."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable
from typing import Any

from bench import load
from bench.servers import HOST, Server

CREATE_BODY = {"group_id": 1, "study_activity_id": 1}
REVIEW_PATH = "/api/v1/study-sessions/4/reviews"
"""Session 4 is in group 1 (bench/backends.py), the group of the review workload's words."""
REVIEW_KEYS = {"id", "study_session_id", "word_id", "correct", "created_at"}


class Disagreement(Exception):
    """An app answers differently from the service."""


def _call(server: Server, method: str, path: str, body: Any = None) -> tuple[int, dict[str, str], Any]:
    conn = http.client.HTTPConnection(HOST, server.port, timeout=30)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(raw) if raw else None
    finally:
        conn.close()


def check_agreement(servers: list[Server], *, sessions: int, reset: Callable[[Server], None]) -> None:
    """Each app creates with 201, `Location` and the service's body keys, then reads that session
    back (200, the same body) and answers an unknown id with a 404 problem; then, with only the
    `sessions` prefilled rows left (`reset`), reads sessions and pages exactly as the service
    does. `Disagreement` says where an app differs; servers[0] is the service."""
    keys: set[str] | None = None
    for server in servers:
        name = server.app.name
        status, headers, created = _call(server, "POST", "/api/v1/study-sessions", CREATE_BODY)
        if status != 201 or not isinstance(created, dict):
            raise Disagreement(f"{name}: a create answered {status} {created!r}, not 201 and a session")
        keys = keys or set(created)
        if set(created) != keys:
            raise Disagreement(f"{name}: a created session has keys {sorted(created)}, the service's {sorted(keys)}")
        location = f"/api/v1/study-sessions/{created['id']}"
        if headers.get("location") != location:
            raise Disagreement(f"{name}: a create's Location is {headers.get('location')!r}, not {location!r}")
        status, _, read = _call(server, "GET", location)
        if status != 200 or read != created:
            raise Disagreement(f"{name}: GET {location} answered {status} {read!r}, not 200 {created!r}")
        status, headers, _ = _call(server, "GET", "/api/v1/study-sessions/999999999")
        if status != 404 or headers.get("content-type") != "application/problem+json":
            raise Disagreement(f"{name}: an unknown id answered {status} {headers.get('content-type')}")
        _check_review(server, name)
        reset(server)
    last_page = max(1, -(-sessions // 10))
    for path in (
        "/api/v1/study-sessions/1",
        f"/api/v1/study-sessions/{sessions}",
        "/api/v1/study-sessions?page=1&per_page=10",
        "/api/v1/study-sessions?page=100&per_page=10",
        f"/api/v1/study-sessions?page={last_page}&per_page=10",
    ):
        expected = _call(servers[0], "GET", path)[::2]
        for server in servers[1:]:
            answered = _call(server, "GET", path)[::2]
            if answered != expected:
                raise Disagreement(f"{server.app.name}: GET {path} answered {answered!r}, the service {expected!r}")


def _check_review(server: Server, name: str) -> None:
    """A review item into a prefilled session of group 1 is a 201 with its body and `Location`; a
    word of another group is a 422 problem."""
    words = [w for w in load.workload("review", 4).args[1:]]
    status, headers, item = _call(server, "POST", REVIEW_PATH, {"word_id": int(words[0]), "correct": True})
    if status != 201 or not isinstance(item, dict) or set(item) != REVIEW_KEYS:
        raise Disagreement(f"{name}: a review answered {status} {item!r}, not 201 and a review item")
    location = f"{REVIEW_PATH}/{item['id']}"
    if headers.get("location") != location:
        raise Disagreement(f"{name}: a review's Location is {headers.get('location')!r}, not {location!r}")
    other = next(w for w in range(1, 1000) if str(w) not in words)
    status, headers, _ = _call(server, "POST", REVIEW_PATH, {"word_id": other, "correct": True})
    if status != 422 or headers.get("content-type") != "application/problem+json":
        raise Disagreement(f"{name}: a word of another group answered {status} {headers.get('content-type')}")
