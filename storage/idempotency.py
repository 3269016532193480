"""Idempotent requests: the first answer to a request sent with an idempotency key is stored in
the same transaction as what the request did, so a retry (same client, same key, same request)
gets that answer again and does nothing. Keys are kept KEEP; an expired one is taken anew."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exc, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import ReturningInsert

from storage.errors import InProgress, KeyReused
from storage.schema import idempotency_keys as keys

KEEP = timedelta(hours=24)
WAIT_FOR_FIRST = 2000
"""Milliseconds a retry waits, on PostgreSQL, for the first request with its key to finish (then
it gets its answer) before it is told that one is still in progress."""
SWEEP_EVERY = 100
"""About one request in this many deletes a batch of expired keys: no cron job needed."""
SWEEP_BATCH = 1000


@dataclass(frozen=True)
class Response:
    """An answer as it is replayed: status, body (what `json` writes: stored as its JSON text),
    headers."""

    status: int
    body: Any
    headers: dict[str, str]


def _claim(insert: Callable[..., sqlite.Insert | postgresql.Insert]) -> ReturningInsert[tuple[str]]:
    fresh = insert(keys).values(
        client=bindparam("who"), key=bindparam("which"), fingerprint=bindparam("request"), created_at=bindparam("now")
    )
    return fresh.on_conflict_do_update(
        index_elements=["client", "key"],
        set_={"fingerprint": fresh.excluded.fingerprint, "created_at": fresh.excluded.created_at, "status": None},
        where=keys.c.created_at < bindparam("cutoff"),
    ).returning(keys.c.key)


_claims = {"sqlite": _claim(sqlite.insert), "postgresql": _claim(postgresql.insert)}
# Bound parameters named apart from the columns, which insert() and update() keep for themselves.
_one = (keys.c.client == bindparam("who"), keys.c.key == bindparam("which"))
_stored = select(keys.c.fingerprint, keys.c.status, keys.c.body, keys.c.headers).where(*_one)
_answer = (
    update(keys)
    .where(*_one)
    .values(status=bindparam("answer_status"), body=bindparam("answer_body"), headers=bindparam("answer_headers"))
)
# Expired keys that no other transaction holds (PostgreSQL; SQLite has one writer): two sweeps, or
# a sweep and a request taking an expired key anew, never wait for each other. The outer test of
# created_at is checked again on a row that changed meanwhile, so a key just taken anew stays.
_expired = (
    select(keys.c.client, keys.c.key)
    .where(keys.c.created_at < bindparam("cutoff"))
    .limit(SWEEP_BATCH)
    .with_for_update(skip_locked=True)
)
_sweep = delete(keys).where(tuple_(keys.c.client, keys.c.key).in_(_expired), keys.c.created_at < bindparam("cutoff"))


def once(
    conn: Connection,
    *,
    client: str,
    key: str,
    fingerprint: str,
    now: datetime,
    work: Callable[[Connection], Response],
) -> Response:
    """The answer to the request `fingerprint` sent by `client` under `key`: the stored one if it
    came before, else `work(conn)`'s, stored now. `KeyReused` if the key came with another
    request; `InProgress` if the first request with it is still running."""
    names = {"who": client, "which": key}
    postgres = conn.dialect.name == "postgresql"
    if postgres:  # wait for a first request with this key a while, not for the whole statement timeout
        conn.execute(text(f"SET LOCAL lock_timeout = {WAIT_FOR_FIRST}"))
    try:
        claimed = conn.execute(
            _claims[conn.dialect.name], {**names, "request": fingerprint, "now": now, "cutoff": now - KEEP}
        ).first()
    except exc.OperationalError as error:
        if getattr(error.orig, "sqlstate", None) == "55P03":  # lock_not_available
            raise InProgress(f"A request with idempotency key {key!r} is still being processed.") from None
        raise
    if postgres:
        conn.execute(text("SET LOCAL lock_timeout = DEFAULT"))
    if claimed is None:
        stored = conn.execute(_stored, names).one()
        if stored.fingerprint != fingerprint:
            raise KeyReused(f"Idempotency key {key!r} was used with another request.")
        if stored.status is None:
            raise InProgress(f"A request with idempotency key {key!r} is still being processed.")
        return Response(stored.status, json.loads(stored.body), json.loads(stored.headers))
    response = work(conn)
    answer = {
        "answer_status": response.status,
        "answer_body": json.dumps(response.body),
        "answer_headers": json.dumps(response.headers),
    }
    conn.execute(_answer, {**names, **answer})
    if random.randrange(SWEEP_EVERY) == 0:  # noqa: S311 - spreading work, not security
        conn.execute(_sweep, {"cutoff": now - KEEP})
    return response
