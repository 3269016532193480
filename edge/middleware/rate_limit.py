"""Each client's quota, per operation kind: `write` (POST) and `read` (GET, HEAD)."""

from __future__ import annotations

from typing import Any

from connexion.exceptions import ProblemException
from starlette.types import Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware
from edge.middleware.request_log import response_headers
from edge.rate_limits import RateLimits

WRITES = ("POST", "PUT", "PATCH", "DELETE")


class RateLimit(HTTPMiddleware):
    """After routing (it limits operations of the API, not the docs, not `exempt` ones) and the
    client's naming (`edge.middleware.clients`); a 429 problem past the quota. The RateLimit
    headers go on every answer of a limited operation, errors included."""

    def __init__(self, app: Any, *, limits: RateLimits, exempt: frozenset[str]) -> None:
        super().__init__(app)
        self.limits = limits
        self.exempt = exempt

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        extensions = scope.get("extensions", {})
        operation_id = extensions.get("connexion_routing", {}).get("operation_id")
        if operation_id is None or operation_id.rsplit(".", 1)[-1] in self.exempt:
            await self.app(scope, receive, send)
            return
        kind = "write" if scope["method"] in WRITES else "read"
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
