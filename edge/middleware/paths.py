"""Paths the spec does not have."""

from __future__ import annotations

from connexion.exceptions import ProblemException
from starlette.types import Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware


class NoSlashRedirects(HTTPMiddleware):
    """A path with a trailing slash is a 404, as the spec has no such path: Starlette would answer
    a 307 to the path without it, an absolute URL that the spec does not declare."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if len(scope["path"]) > 1 and scope["path"].endswith("/"):
            raise ProblemException(status=404, title="Not Found", detail="Nothing is at this path.")
        await self.app(scope, receive, send)
