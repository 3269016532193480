"""The request id on every response, and one JSON log line per request."""

from __future__ import annotations

import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from edge.logs import log, request_id_var
from edge.middleware.base import CLIENT_GONE, FAILED, HTTPMiddleware
from edge.problems import cut

REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
RESPONSE_HEADERS = "study_sessions.response_headers"
MAX_LOGGED_CHARS = 1000
"""The most of a client-supplied field (a path) a log line carries."""


def logged(text: str) -> str:
    """`text`, a field a client chose, cut to MAX_LOGGED_CHARS for the log."""
    return cut(text, MAX_LOGGED_CHARS)


class RequestLog(HTTPMiddleware):
    """Outermost: takes the request id from `X-Request-ID` or makes one, echoes it on every
    response, and logs one JSON line per request."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope.setdefault("extensions", {})  # shared with the copies inner layers make
        given = Headers(scope=scope).get("x-request-id", "")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                _stamp(message, scope)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
            status = status or CLIENT_GONE
        except BaseException:
            status = status or FAILED
            raise
        finally:
            log.info(
                "request",
                extra={
                    "method": logged(scope["method"]),
                    "path": logged(scope["path"]),
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                },
            )
            request_id_var.reset(token)


def response_headers(scope: Scope) -> dict[str, str]:
    """Headers that inner middleware asks to put on the response, whoever gives it (a handler,
    or the error handler after an exception)."""
    headers: dict[str, str] = scope.setdefault("extensions", {}).setdefault(RESPONSE_HEADERS, {})
    return headers


def _stamp(message: Message, scope: Scope | None = None) -> None:
    headers = MutableHeaders(scope=message)
    headers["X-Request-ID"] = request_id_var.get()
    if scope is not None:
        for name, value in scope["extensions"].get(RESPONSE_HEADERS, {}).items():
            headers[name] = value


class StampRequestId(HTTPMiddleware):
    """Innermost: puts `X-Request-ID` on the handler's own responses too, where response
    validation (on in tests) checks them against the spec."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                _stamp(message)
            await send(message)

        await self.app(scope, receive, send_with_id)
