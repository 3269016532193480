"""Each request counted, and timed, by the operation it reached and the status it got."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from edge import metrics
from edge.middleware.base import CLIENT_GONE, FAILED, HTTPMiddleware


class Metrics(HTTPMiddleware):
    """Outermost, beside the request log: sees every answer, errors and refusals included."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Connexion's routing names the operation in this dict, shared with the scopes it copies.
        extensions: dict[str, Any] = scope.setdefault("extensions", {})
        started = time.perf_counter()
        status = 0

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
            status = status or CLIENT_GONE
        except BaseException:
            status = status or FAILED
            raise
        finally:
            operation_id = extensions.get("connexion_routing", {}).get("operation_id")
            operation = operation_id.rsplit(".", 1)[-1] if operation_id else metrics.UNROUTED
            metrics.requests_of(operation, status).inc()
            metrics.duration_of(operation).observe(time.perf_counter() - started)
