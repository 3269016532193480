"""Rate limits per client, with the `limits` library: in this process's memory by default, in
Redis when REDIS_URL names one, so that one limit holds across every worker and host.

Where Redis cannot be reached, requests are served without a limit (fail open) rather than
refused: the log says why, once while it lasts, and the limiter tries Redis again every few
seconds, then says when limits are back."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from edge.settings import OFF

log = logging.getLogger(__name__)

REDIS_TIMEOUT = 0.25
"""Seconds a request waits for Redis before it is served unlimited."""
RETRY_REDIS_AFTER = 5.0
"""Seconds between tries of a Redis that failed."""


@dataclass(frozen=True)
class Decision:
    """Whether a request may go on, and what the RateLimit headers say of the client's quota."""

    allowed: bool
    headers: dict[str, str]
    retry_after: int = 0


class RateLimits:
    """The `read` and `write` limits (`limits` notation, e.g. `30/minute`; `off` for none)."""

    def __init__(self, *, write: str, read: str, redis_url: str = "") -> None:
        self.items: dict[str, RateLimitItem] = {
            name: parse(text) for name, text in (("write", write), ("read", read)) if text.strip().lower() not in OFF
        }
        storage: Storage
        if redis_url:
            # Imported only here: coredis takes a third of a second to import, at every worker's
            # start, and a service without Redis never uses it.
            from coredis.retry import NoRetryPolicy

            uri = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
            # No retries inside the client: a Redis that does not answer costs a request
            # REDIS_TIMEOUT once, not once a try.
            client: dict[str, Any] = {"retry_policy": NoRetryPolicy()}  # options go on to coredis
            storage = RedisStorage(
                uri, wrap_exceptions=True, connect_timeout=REDIS_TIMEOUT, stream_timeout=REDIS_TIMEOUT, **client
            )
        else:
            storage = MemoryStorage()
        self.where = "redis" if redis_url else "memory"
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self._down_since: float | None = None
        self._next_try = 0.0

    async def hit(self, kind: str, client: str) -> Decision:
        """Counts one `kind` request of `client`; whether it is within the limit."""
        item = self.items.get(kind)
        if item is None:
            return Decision(True, {})
        if self._down_since is not None:
            if time.monotonic() < self._next_try:
                return Decision(True, {})
            self._next_try = time.monotonic() + RETRY_REDIS_AFTER  # this request tries; the others go on
        try:
            async with asyncio.timeout(REDIS_TIMEOUT if self.where == "redis" else None):
                allowed = await self.limiter.hit(item, kind, client)
                stats = await self.limiter.get_window_stats(item, kind, client)
        except Exception as error:  # noqa: BLE001 - whatever the store's failure, serve unlimited
            self._failed(error)
            return Decision(True, {})
        self._recovered()
        # A window just hit ends a whole window from now; `limits` computes its end from the key's
        # time to live modulo the window, which is 0 when Redis answers within the same millisecond.
        reset = math.ceil(stats.reset_time - time.time())
        if reset <= 0:
            reset = item.get_expiry()
        headers = {
            "RateLimit-Policy": f'"{kind}";q={item.amount};w={item.get_expiry()}',
            "RateLimit": f'"{kind}";r={stats.remaining};t={reset}',
        }
        return Decision(allowed, headers, retry_after=max(1, reset))

    def describe(self, kind: str) -> str:
        item = self.items[kind]
        return f"{item.amount} request{'s' if item.amount != 1 else ''} per {item.get_expiry()} s"

    def _failed(self, error: Exception) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            log.warning(
                "rate limits suspended: their store cannot be reached; serving without limits until it can",
                extra={"store": self.where, "error": f"{type(error).__name__}: {error}"[:300]},
            )
        self._next_try = now + RETRY_REDIS_AFTER

    def _recovered(self) -> None:
        if self._down_since is not None:
            log.warning(
                "rate limits resumed: their store answers again",
                extra={"store": self.where, "suspended_s": round(time.monotonic() - self._down_since, 1)},
            )
            self._down_since = None
