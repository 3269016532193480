"""What the service is configured with: every environment variable the README lists."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CORS_ORIGINS = (
    "http://localhost:3000,http://127.0.0.1:3000,http://localhost:5173,http://127.0.0.1:5173,"
    "http://localhost:8080,http://127.0.0.1:8080"
)


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
    docs_dir: Path = ROOT / "build" / "docs"
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
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            database_url=env.get("DATABASE_URL", cls.database_url),
            host=env.get("HOST", cls.host),
            port=int(env.get("PORT", cls.port)),
            cors_origins=tuple(
                o.strip() for o in env.get("CORS_ORIGINS", DEFAULT_CORS_ORIGINS).split(",") if o.strip()
            ),
            log_level=env.get("LOG_LEVEL", cls.log_level).upper(),
            db_timeout=float(env.get("DB_TIMEOUT", cls.db_timeout)),
            validate_responses=env.get("VALIDATE_RESPONSES", "") in ("1", "true", "yes"),
            db_pool_size=int(env.get("DB_POOL_SIZE", cls.db_pool_size)),
            workers=int(env.get("WORKERS", cls.workers)),
            worker_timeout=float(env.get("WORKER_TIMEOUT", cls.worker_timeout)),
            graceful_timeout=float(env.get("GRACEFUL_TIMEOUT", cls.graceful_timeout)),
            api_keys=api_key_digests(env.get("API_KEYS", "")),
            reads_need_api_key=env.get("READS_NEED_API_KEY", "") in ("1", "true", "yes"),
            rate_limit_write=env.get("RATE_LIMIT_WRITE", cls.rate_limit_write),
            rate_limit_read=env.get("RATE_LIMIT_READ", cls.rate_limit_read),
            redis_url=env.get("REDIS_URL", cls.redis_url),
            forwarded_allow_ips=env.get("FORWARDED_ALLOW_IPS", cls.forwarded_allow_ips),
            max_connections=int(env.get("MAX_CONNECTIONS", cls.max_connections)),
        )


def api_key_digests(text: str) -> frozenset[str]:
    """API_KEYS: comma-separated SHA-256 hex digests of the accepted keys (never the keys)."""
    digests = frozenset(d.strip().lower() for d in text.split(",") if d.strip())
    wrong = [d for d in digests if len(d) != 64 or any(c not in "0123456789abcdef" for c in d)]
    if wrong:
        raise ValueError(f"API_KEYS holds {len(wrong)} value(s) that are not SHA-256 hex digests (64 hex digits)")
    return digests
