"""Schemathesis checks of what a client relies on beyond the schema, registered for every run:
the in-process tests load this file through schemathesis.toml's `hooks`, the CLI likewise.

A created session must be readable at once, at its `Location` and by its `id`, exactly as the 201
described it; a 409's `Location` must lead to the session that holds the id. Schemathesis's own
`ensure_resource_availability` gives up silently when a link leaves a parameter unsupplied, and
404 is a declared status for valid input, so without this a service that loses what it creates
would pass. The check makes its own GETs, so it does not depend on which links the state machine
happens to follow."""

from __future__ import annotations

from typing import Any

import schemathesis

CREATE = ("POST", "/study-sessions")
BASE_PATHS = ("/api/v1", "/api")
"""app.BASE_PATHS (not imported: the CLI loads this file without the service's packages on its path)."""
COUNTS = ("review_items_count", "correct_count", "wrong_count")


def _read(case: Any, id: int) -> Any:
    """GET /study-sessions/{id} through the same transport (ASGI app or live URL) as `case`."""
    get = case.operation.schema.find_operation_by_id("get_study_session")
    return get.Case(path_parameters={"id": id}).call()


def _location(case: Any, id: int) -> str:
    return f"{case.operation.schema.base_path.rstrip('/')}/study-sessions/{id}"


@schemathesis.check
def created_sessions_are_readable(ctx: Any, response: Any, case: Any) -> bool | None:
    """After a 201 from POST /study-sessions, GET of its id is a 200 with the 201's body, at the
    URL its `Location` names; after a 409, the session holding the sent id is a 200."""
    if (case.operation.method.upper(), case.operation.path) != CREATE or response.status_code not in (201, 409):
        return None
    if response.status_code == 201:
        created = response.json()
        id = created["id"]
    else:
        id = case.body["id"]
    location = response.headers.get("location", [None])[0]
    wanted = {_location(case, id)}
    if any(name.lower() == "idempotency-key" for name in case.headers or {}):
        # A replay is the first answer, whose Location may be under the other base path (a run
        # of the same seed on each base path of one service sends the same keys and bodies).
        wanted |= {f"{base}/study-sessions/{id}" for base in BASE_PATHS}
    assert location in wanted, f"{response.status_code} for id {id} has Location {location!r}"
    read = _read(case, id)
    assert read.status_code == 200, f"session {id} answered {response.status_code}, then GET {read.status_code}"
    if response.status_code == 201:
        # A replayed 201 (an Idempotency-Key sent again) is the first answer, whose review counts
        # may have grown since: everything else must be as it was.
        now, then = ({k: v for k, v in d.items() if k not in COUNTS} for d in (read.json(), created))
        assert now == then, f"GET of session {id} differs from its 201: {read.json()} != {created}"
    else:
        assert read.json()["id"] == id, f"GET of session {id} gave session {read.json()['id']}"
    return True
