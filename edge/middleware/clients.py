"""Names the client of each request, for the rate limits, the API key check and idempotency."""

from __future__ import annotations

from typing import Any

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware
from edge.security import HEADER, accepted

UNKNOWN_CLIENT = "unknown"


class Clients(HTTPMiddleware):
    """Names the client in Connexion's context, for the rate limits, the API key check and
    idempotency keys: `key:<digest prefix>` for a valid API key, else `address:<ip>` (the proxy's
    client where FORWARDED_ALLOW_IPS trusts it, which the server applies)."""

    def __init__(self, app: Any, *, api_keys: frozenset[str]) -> None:
        super().__init__(app)
        self.api_keys = api_keys

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        context: dict[str, Any] = scope.setdefault("extensions", {}).setdefault("connexion_context", {})
        key = Headers(scope=scope).get(HEADER) if self.api_keys else None
        valid = accepted(key, self.api_keys) if key is not None else None
        context["api_key"] = valid
        if valid is not None:
            context["client"] = f"key:{valid[:16]}"
        else:
            address = (scope.get("client") or (UNKNOWN_CLIENT,))[0]
            context["client"] = f"address:{address}"
        await self.app(scope, receive, send)
