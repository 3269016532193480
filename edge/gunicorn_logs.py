"""gunicorn's own log (its master's and its workers' lines) as the service's JSON lines on stderr."""

from __future__ import annotations

from typing import Any

from gunicorn.glogging import Logger

from edge.logs import configure_logging


class JsonLogger(Logger):
    """gunicorn's logger, whose lines go through the service's JSON handler on stderr."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        configure_logging(cfg.loglevel.upper())
