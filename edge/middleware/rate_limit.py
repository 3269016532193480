"""Each client's quota, per operation kind: `write` (POST) and `read` (GET, HEAD)."""

from __future__ import annotations

from typing import Any

from connexion.exceptions import ProblemException
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware
from edge.middleware.request_log import response_headers
from edge.rate_limits import RateLimits

WRITES = ("POST", "PUT", "PATCH", "DELETE")
DOCS = "/docs"
"""The docs site, a page of its own (Swagger UI and the spec are answered before routing)."""


class RateLimit(HTTPMiddleware):
    """After routing and the client's naming (`edge.middleware.clients`); a 429 problem past the
    quota. Every operation but the `exempt` ones is limited; a request that matches none is left
    to `RefusalsRateLimit`. The RateLimit headers go on every limited answer, errors included."""

    def __init__(self, app: Any, *, limits: RateLimits, exempt: frozenset[str]) -> None:
        super().__init__(app)
        self.limits = limits
        self.exempt = exempt

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        operation_id = scope.get("extensions", {}).get("connexion_routing", {}).get("operation_id")
        if operation_id is None or operation_id.rsplit(".", 1)[-1] in self.exempt:
            await self.app(scope, receive, send)
            return
        kind = "write" if scope["method"] in WRITES else "read"
        await charge(self.limits, kind, scope)
        await self.app(scope, receive, send)


class RefusalsRateLimit(HTTPMiddleware):
    """After the client's naming, before the request's head is checked and routed: a request
    refused without reaching an operation (a 404, a 405, any refusal of edge.middleware.paths; not
    the docs) counts against its client's read quota, so that refusals cost a quota too; past it,
    it is a 429 instead."""

    def __init__(self, app: Any, *, limits: RateLimits) -> None:
        super().__init__(app)
        self.limits = limits

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Routing marks the operation in this dict, which its copy of the scope shares.
        extensions = scope.setdefault("extensions", {})
        try:
            await self.app(scope, receive, send)
        except HTTPException:
            routed = extensions.get("connexion_routing", {}).get("operation_id") is not None
            if not routed and scope["path"] != DOCS:
                await charge(self.limits, "read", scope)
            raise


async def charge(limits: RateLimits, kind: str, scope: Scope) -> None:
    """Counts the request against its client's `kind` quota, puts the RateLimit headers on its
    answer, and raises a 429 problem past the quota."""
    decision = await limits.hit(kind, scope["extensions"]["connexion_context"]["client"])
    response_headers(scope).update(decision.headers)
    if not decision.allowed:
        raise ProblemException(
            status=429,
            title="Too Many Requests",
            detail=f"The {kind} limit, {limits.describe(kind)}, is used up: try again in {decision.retry_after} s.",
            headers={"Retry-After": str(decision.retry_after)},
        )
