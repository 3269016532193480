"""What every create shares: its answer, and the safe retry an Idempotency-Key asks for."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from handlers import shape
from storage import idempotency
from storage.database import Database


def created(value: Any, location: str) -> idempotency.Response:
    """A 201 for the stored record `value`, at `location`."""
    return idempotency.Response(201, shape.item(value), {"Location": location})


async def answer(
    db: Database,
    context: dict[str, Any],
    body: dict[str, Any],
    now: datetime,
    create: Callable[[Connection], idempotency.Response],
) -> tuple[dict[str, Any], int, dict[str, str]]:
    """`create`'s answer, from one write transaction; with the request's Idempotency-Key, the
    answer the first request with it got, if it came before (storage.idempotency)."""
    key = context.get("idempotency_key")
    if key is None:
        response = await db.write(create)
    else:
        fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        response = await db.write(
            idempotency.once, client=context["client"], key=key, fingerprint=fingerprint, now=now, work=create
        )
    return response.body, response.status, {**shape.JSON, **response.headers}
