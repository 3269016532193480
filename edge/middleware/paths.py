"""A request's head within bounds: its headers not too large, its path one the spec can have."""

from __future__ import annotations

from connexion.exceptions import ProblemException
from starlette.types import Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware

MAX_HEADER_BYTES = 16384
"""The most a request's headers may weigh together; uvicorn's httptools parser sets no limit."""


class RequestHead(HTTPMiddleware):
    """Headers over MAX_HEADER_BYTES are a 431. A path with a trailing slash is a 404, as the spec
    has no such path: Starlette would answer a 307 to the path without it, an absolute URL that the
    spec does not declare."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if sum(len(name) + len(value) + 4 for name, value in scope["headers"]) > MAX_HEADER_BYTES:
            raise ProblemException(
                status=431,
                title="Request Header Fields Too Large",
                detail=f"The request's headers are larger than {MAX_HEADER_BYTES} bytes.",
            )
        if len(scope["path"]) > 1 and scope["path"].endswith("/"):
            raise ProblemException(status=404, title="Not Found", detail="Nothing is at this path.")
        await self.app(scope, receive, send)
