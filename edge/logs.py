"""One JSON object a line on stderr, for every logger, each stamped with the request id."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import IO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

log = logging.getLogger("study_sessions")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "gunicorn.error", "gunicorn.access")


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """Every logger's records as JSON lines on `stream` (stderr by default), at `level` and up."""
    handler = logging.StreamHandler(stream)
    # uvicorn adds a `color_message` copy of its messages, with terminal escapes; leave it out.
    handler.setFormatter(
        JsonFormatter(
            "{asctime}{levelname}{name}{message}", style="{", reserved_attrs=[*RESERVED_ATTRS, "color_message"]
        )
    )
    handler.addFilter(_stamp_request_id)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The servers' own loggers (uvicorn's and gunicorn's, which bring plain-text handlers of their
    # own) and Python's warnings go through the same handler: one format from start to stop.
    for name in SERVER_LOGGERS:
        server_logger = logging.getLogger(name)
        server_logger.handlers = []  # rebound, not emptied: uvicorn's worker shares gunicorn's list
        server_logger.propagate = True
    logging.captureWarnings(True)
    # Our access log replaces uvicorn's; connexion logs every 4xx it raises, which says it twice.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("connexion").setLevel(logging.ERROR)
    # Alembic names each of its autogenerate plugins as it loads them, on every start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)


def _stamp_request_id(record: logging.LogRecord) -> bool:
    if not hasattr(record, "request_id"):
        record.request_id = request_id_var.get()
    return True
