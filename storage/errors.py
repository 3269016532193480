"""What the storage layer raises: the only database errors the rest of the service sees."""

from __future__ import annotations

from dataclasses import dataclass


class StorageError(Exception):
    """Base of every error the storage layer raises on purpose."""


class NotFound(StorageError):
    """The row asked for does not exist."""


class Duplicate(StorageError):
    """A row with this primary key exists already."""

    def __init__(self, message: str, *, existing_id: int) -> None:
        super().__init__(message)
        self.existing_id = existing_id


@dataclass(frozen=True)
class Violation:
    """One field of a request that cannot be accepted: where (a JSON pointer) and why."""

    pointer: str
    detail: str


class Unprocessable(StorageError):
    """Well-formed input that names missing rows or values the data cannot hold."""

    def __init__(self, violations: list[Violation]) -> None:
        super().__init__("; ".join(v.detail for v in violations))
        self.violations = violations


class Unavailable(StorageError):
    """The database cannot be reached, or stayed locked past the busy timeout; `cause` says which
    kind of fault in a few words a client may read (never a path or a host)."""

    def __init__(self, message: str, cause: str = "it cannot be reached") -> None:
        super().__init__(message)
        self.cause = cause


class SchemaOutOfDate(Unavailable):
    """The database answers, but its schema is not at the revision this code was written for."""


class KeyReused(StorageError):
    """An idempotency key came again with another request."""


class InProgress(StorageError):
    """A request with this idempotency key is still being processed."""
