"""How stored values look in a response body."""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from storage.pages import Page

JSON = {"Content-Type": "application/json"}
"""Which of an operation's media types a success response is (its errors are problem+json)."""


def instant(value: datetime) -> str:
    """An RFC 3339 UTC date-time ending in `Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def item(value: Any) -> dict[str, Any]:
    """A stored record as a JSON object; its datetimes as RFC 3339 UTC strings."""
    return {k: instant(v) if isinstance(v, datetime) else v for k, v in asdict(value).items()}


def page(value: Page[Any]) -> dict[str, Any]:
    """A page of records with where it stands in the whole list."""
    return {
        "items": [item(i) for i in value.items],
        "total": value.total,
        "page": value.page,
        "per_page": value.per_page,
        "total_pages": value.total_pages,
    }
