"""What the service is configured with: every environment variable the README lists."""

from __future__ import annotations

import ipaddress
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from limits import parse as parse_limit
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from edge import files

DEFAULT_CORS_ORIGINS = (
    "http://localhost:3000,http://127.0.0.1:3000,http://localhost:5173,http://127.0.0.1:5173,"
    "http://localhost:8080,http://127.0.0.1:8080"
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
OFF = ("", "off", "none", "0")
"""What turns a rate limit off (edge.rate_limits reads the same)."""
_ORIGIN = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s,]+", re.IGNORECASE)
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The service's configuration; `from_env` reads it from environment variables."""

    database_url: str = "sqlite:///var/study_sessions.db"
    host: str = "127.0.0.1"
    port: int = 5000
    cors_origins: tuple[str, ...] = tuple(DEFAULT_CORS_ORIGINS.split(","))
    log_level: str = "INFO"
    db_timeout: float = 5.0
    validate_responses: bool = False
    docs_dir: Path = files.DOCS_DIR
    db_pool_size: int = 5
    workers: int = 2
    worker_timeout: float = 30.0
    graceful_timeout: float = 20.0
    api_keys: frozenset[str] = frozenset()
    reads_need_api_key: bool = False
    rate_limit_write: str = "120/minute"
    rate_limit_read: str = "1200/minute"
    redis_url: str = ""
    forwarded_allow_ips: str = ""
    max_connections: int = 1000

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives; `BadSettings` names every variable that is wrong."""
        read = _Reader(os.environ if env is None else env)
        settings = cls(
            database_url=read(
                "DATABASE_URL", cls.database_url, _database_url, show=lambda url: repr(without_password(url))
            ),
            host=read("HOST", cls.host, _non_empty),
            port=read("PORT", str(cls.port), _whole(1, 65535)),
            cors_origins=read("CORS_ORIGINS", DEFAULT_CORS_ORIGINS, _origins),
            log_level=read("LOG_LEVEL", cls.log_level, _log_level),
            db_timeout=read("DB_TIMEOUT", str(cls.db_timeout), _seconds(minimum=0.001)),
            validate_responses=read("VALIDATE_RESPONSES", "", _switch),
            db_pool_size=read("DB_POOL_SIZE", str(cls.db_pool_size), _whole(1, 1000)),
            workers=read("WORKERS", str(cls.workers), _whole(1, 1000)),
            worker_timeout=read("WORKER_TIMEOUT", str(cls.worker_timeout), _seconds(minimum=1)),
            graceful_timeout=read("GRACEFUL_TIMEOUT", str(cls.graceful_timeout), _seconds(minimum=0)),
            api_keys=read("API_KEYS", "", api_key_digests, secret=True),
            reads_need_api_key=read("READS_NEED_API_KEY", "", _switch),
            rate_limit_write=read("RATE_LIMIT_WRITE", cls.rate_limit_write, _rate_limit),
            rate_limit_read=read("RATE_LIMIT_READ", cls.rate_limit_read, _rate_limit),
            redis_url=read("REDIS_URL", cls.redis_url, _redis_url, show=lambda url: repr(without_password(url))),
            forwarded_allow_ips=read("FORWARDED_ALLOW_IPS", cls.forwarded_allow_ips, _addresses),
            max_connections=read("MAX_CONNECTIONS", str(cls.max_connections), _whole(1, 1_000_000)),
        )
        if read.problems:
            raise BadSettings(read.problems)
        return settings


class BadSettings(ValueError):
    """Settings the service cannot start with: one line per variable, naming it, its value and
    what it takes."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def settings_or_exit() -> Settings:
    """The environment's settings; where any is wrong, one JSON log line each on stderr, then exit 2."""
    try:
        return Settings.from_env()
    except BadSettings as error:
        from edge.logs import configure_logging, log

        configure_logging("INFO")
        for problem in error.problems:
            log.critical(problem)
        raise SystemExit(2) from None


class _Reader:
    """Reads variables, each through its parser; a value a parser refuses is kept in `problems`
    (and its default used meanwhile, so that every wrong variable is named at once)."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def __call__(
        self,
        name: str,
        default: str,
        parse: Callable[[str], T],
        *,
        secret: bool = False,
        show: Callable[[str], str] = repr,
    ) -> T:
        text = self.env.get(name, default)
        try:
            return parse(text)
        except ValueError as error:
            shown = "(not shown: it may hold a secret)" if secret else show(text)
            self.problems.append(f"{name} is {shown}: it takes {error}.")
            return parse(default)


def without_password(url: str) -> str:
    """`url` with any password in it starred out, to be shown or logged."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _non_empty(text: str) -> str:
    if not text.strip():
        raise ValueError("a value that is not empty")
    return text.strip()


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return value

    return parse


def _seconds(minimum: float) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= minimum):
            raise ValueError(f"a number of seconds, {minimum:g} or more (such as 5 or 0.5)")
        return value

    return parse


def _switch(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ValueError("1 (or true, yes, on) or 0 (or false, no, off, or unset)")


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"one of {', '.join(LOG_LEVELS)}")
    return level


def _database_url(text: str) -> str:
    try:
        url = make_url(text.strip())
    except ArgumentError:
        url = None
    if url is not None and url.drivername == "postgresql":  # SQLAlchemy's default is psycopg2, not ours
        url = url.set(drivername="postgresql+psycopg")
    if url is None or url.drivername not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError("an SQLAlchemy URL of SQLite or PostgreSQL (sqlite:///path or postgresql+psycopg://...)")
    if url.drivername != "postgresql+psycopg" and _in_memory(url.database or "", url.query.get("mode")):
        # Each connection (the event loop's, the writer's, each reader's) would have an empty
        # database of its own, and the migrated one would be gone with the connection that made it.
        raise ValueError("a SQLite file (sqlite:///path), not memory, where each connection has a database of its own")
    return text.strip() if url.drivername != "postgresql+psycopg" else url.render_as_string(hide_password=False)


def _in_memory(database: str, mode: object) -> bool:
    """Whether a SQLite URL's database is memory: none, `:memory:`, or a URI of mode=memory."""
    return database in ("", ":memory:") or database.startswith("file::memory:") or mode == "memory"


def _origins(text: str) -> tuple[str, ...]:
    origins = tuple(o.strip() for o in text.split(",") if o.strip())
    if not all(o == "*" or _ORIGIN.fullmatch(o) for o in origins):
        raise ValueError("comma-separated origins, each scheme://host[:port] with no path (or *)")
    return origins


def _rate_limit(text: str) -> str:
    if text.strip().lower() not in OFF:
        try:
            parse_limit(text)
        except ValueError:
            raise ValueError("a rate in the limits notation (30/minute, 5/second, 1000/hour) or off") from None
    return text


REDIS_SCHEMES = ("redis://", "rediss://", "redis+unix://")
"""What the `limits` library reaches Redis by (each also with its `async+` prefix)."""


def _redis_url(text: str) -> str:
    if text and not text.removeprefix("async+").startswith(REDIS_SCHEMES):
        raise ValueError("a Redis URL (redis://host:6379/0, rediss://..., redis+unix:///path) or nothing")
    return text


def _addresses(text: str) -> str:
    for address in (a.strip() for a in text.split(",") if a.strip()):
        if address == "*":
            continue
        try:
            ipaddress.ip_network(address, strict=False)
        except ValueError:
            raise ValueError("comma-separated IP addresses or networks (10.0.0.1, 10.0.0.0/8), or *") from None
    return text


def api_key_digests(text: str) -> frozenset[str]:
    """API_KEYS: comma-separated SHA-256 hex digests of the accepted keys (never the keys)."""
    digests = frozenset(d.strip().lower() for d in text.split(",") if d.strip())
    wrong = [d for d in digests if len(d) != 64 or any(c not in "0123456789abcdef" for c in d)]
    if wrong:
        raise ValueError(f"SHA-256 hex digests (64 hex digits each), comma-separated; {len(wrong)} value(s) are not")
    return digests
