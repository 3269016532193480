"""One JSON object a line on stderr, for every logger, each stamped with the request id."""

from __future__ import annotations

import logging
from contextvars import ContextVar
from typing import IO

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

log = logging.getLogger("study_sessions")
request_id_var: ContextVar[str] = ContextVar("request_id", default="-")


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
    # Our access log replaces uvicorn's; connexion logs every 4xx it raises, which says it twice.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("connexion").setLevel(logging.ERROR)


def _stamp_request_id(record: logging.LogRecord) -> bool:
    if not hasattr(record, "request_id"):
        record.request_id = request_id_var.get()
    return True
