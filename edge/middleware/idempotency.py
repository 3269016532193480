"""Hands a request's Idempotency-Key to its handler, which Connexion passes no header to."""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware

HEADER = "Idempotency-Key"


class IdempotencyKey(HTTPMiddleware):
    """Puts the header (validated against the spec further in) into Connexion's context, which
    `Clients` made before routing, where a handler that takes `context_` finds it as
    `idempotency_key`."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = Headers(scope=scope).get(HEADER)
        if key is not None:
            scope["extensions"]["connexion_context"]["idempotency_key"] = key
        await self.app(scope, receive, send)
