"""How the service connects to PostgreSQL, in a module of its own that imports nothing: the
benchmark's psycopg peer (bench/peers/pg.py) connects the same way without loading SQLAlchemy."""

from __future__ import annotations

from typing import Any


def postgresql_connect_args(timeout: float) -> dict[str, Any]:
    """psycopg's connection arguments: bounded connecting, TCP timeouts, and no server-side
    prepared statements (PgBouncer in transaction pooling mode cannot keep them)."""
    return {
        "connect_timeout": max(1, round(timeout)),
        # A server that stops answering (gone, or cut off) fails the request instead of
        # holding it: unacknowledged data times out, and an idle connection is probed.
        "tcp_user_timeout": int(timeout * 1000),
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "prepare_threshold": None,
    }
