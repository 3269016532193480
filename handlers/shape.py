"""How stored values look in a response body."""

from __future__ import annotations

from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

from storage.pages import Page

JSON = {"Content-Type": "application/json"}
"""Which of an operation's media types a success response is (its errors are problem+json)."""


def instant(value: datetime) -> str:
    """An RFC 3339 UTC date-time ending in `Z`."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def item(value: Any) -> dict[str, Any]:
    """A stored record (a flat dataclass) as a JSON object; its datetimes as RFC 3339 UTC strings."""
    names = _names.get(type(value)) or _names.setdefault(type(value), tuple(f.name for f in fields(value)))
    return {k: instant(v) if isinstance(v, datetime) else v for k in names for v in (getattr(value, k),)}


_names: dict[type, tuple[str, ...]] = {}


def page(value: Page[Any]) -> dict[str, Any]:
    """A page of records with where it stands in the whole list."""
    return {
        "items": [item(i) for i in value.items],
        "total": value.total,
        "page": value.page,
        "per_page": value.per_page,
        "total_pages": value.total_pages,
    }
