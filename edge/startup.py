"""The admin step before serving: the database brought to the newest schema and seeded; where
that cannot be done, one log line saying why, and exit, instead of a traceback."""

from __future__ import annotations

from sqlalchemy import exc

from edge.logs import log
from edge.settings import Settings, without_password
from storage import migrate
from storage.engine import make_engine
from storage.errors import Unavailable

EXIT_DATABASE = 3
"""The exit status of a start that could not bring its database up to date."""


def prepare_database(settings: Settings) -> None:
    """Migrate and seed the settings' database, or log one line and raise SystemExit."""
    engine = make_engine(settings.database_url, busy_timeout=settings.db_timeout)
    try:
        migrate.upgrade(engine)
        migrate.seed(engine)
    except (exc.DBAPIError, Unavailable, OSError) as error:
        cause = error.orig if isinstance(error, exc.DBAPIError) else error
        first_line = (str(cause).strip().splitlines() or [""])[0]
        log.critical(
            "cannot start: the database cannot be migrated",
            extra={
                "database": without_password(settings.database_url),
                "error": f"{type(cause).__name__}: {first_line}"[:300],
            },
        )
        raise SystemExit(EXIT_DATABASE) from None
    finally:
        engine.dispose()  # the service opens the database it was given, and makes none
