"""Headers that every answer carries, so that no browser or cache does more with it than meant."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware

CACHEABLE = ("/docs", "/api/v1/ui/", "/api/ui/")
"""The docs site and Swagger UI's files: pages a browser may keep."""


class SecurityHeaders(HTTPMiddleware):
    """`X-Content-Type-Options: nosniff` on every answer (a browser must not guess a type), and
    `Cache-Control: no-store` on every answer but the docs pages (what a learner did is not for a
    shared cache to keep)."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        store = not scope["path"].startswith(CACHEABLE)

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                if store:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_hardened)
