"""A planted bug, for proving that the contract runs notice it: a store that answers 404 for some
of the sessions it created. `python -m tests.planted.lossy_service` starts the service with it
(migrate, seed, serve, as `python app.py` does) for the live run."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection

from storage import study_sessions
from storage.errors import NotFound


def losing_get(lost: Callable[[int], bool]) -> Callable[[Connection, int], study_sessions.StudySession]:
    """`storage.study_sessions.get`, but NotFound for every id that `lost` picks."""
    real_get = study_sessions.get

    def get(conn: Connection, id: int) -> study_sessions.StudySession:
        if lost(id):
            raise NotFound(f"There is no study session with id {id}.")
        return real_get(conn, id)

    return get


if __name__ == "__main__":
    import app

    study_sessions.get = losing_get(lambda id: id % 2 == 0)  # type: ignore[assignment]  # same call, positional
    app.main()
