"""Each client's quota, per operation kind: `write` (POST) and `read` (GET, HEAD)."""

from __future__ import annotations

from typing import Any

from connexion.exceptions import ProblemException
from starlette.types import Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware
from edge.middleware.request_log import response_headers
from edge.rate_limits import RateLimits

WRITES = ("POST", "PUT", "PATCH", "DELETE")
DOCS = "/docs"
"""The docs site, a page of its own (Swagger UI and the spec are answered before routing)."""


class RateLimit(HTTPMiddleware):
    """After routing and the client's naming (`edge.middleware.clients`); a 429 problem past the
    quota. Every operation but the `exempt` ones is limited, and a request that matches no
    operation (a 404, a 405; not the docs) counts as a read, so that unknown paths cost a quota too.
    The RateLimit headers go on every limited answer, errors included."""

    def __init__(self, app: Any, *, limits: RateLimits, exempt: frozenset[str]) -> None:
        super().__init__(app)
        self.limits = limits
        self.exempt = exempt

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions", {})
        operation_id = extensions.get("connexion_routing", {}).get("operation_id")
        if (operation_id.rsplit(".", 1)[-1] in self.exempt) if operation_id else scope["path"] == DOCS:
            await self.app(scope, receive, send)
            return
        kind = "write" if operation_id is not None and scope["method"] in WRITES else "read"
        decision = await self.limits.hit(kind, extensions["connexion_context"]["client"])
        response_headers(scope).update(decision.headers)
        if not decision.allowed:
            raise ProblemException(
                status=429,
                title="Too Many Requests",
                detail=(
                    f"The {kind} limit, {self.limits.describe(kind)}, is used up: "
                    f"try again in {decision.retry_after} s."
                ),
                headers={"Retry-After": str(decision.retry_after)},
            )
        await self.app(scope, receive, send)
