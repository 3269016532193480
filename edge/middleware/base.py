"""The base of our ASGI middleware."""

from __future__ import annotations

from abc import ABC, abstractmethod

from starlette.types import ASGIApp, Receive, Scope, Send

CLIENT_GONE = 499
"""The status the request log and the metrics give a request that got no answer because its
client went away first (nginx's "client closed request"); none is sent."""
FAILED = 500
"""The status they give a request whose handling raised before any answer started."""


class HTTPMiddleware(ABC):
    """An ASGI middleware for HTTP requests; anything else (lifespan) passes through untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self.http(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    @abstractmethod
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one HTTP request, calling `self.app` to go on."""
