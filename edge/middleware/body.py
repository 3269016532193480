"""Request bodies: bounded in size, and said to be UTF-8 JSON."""

from __future__ import annotations

import asyncio

from connexion.exceptions import BadRequestProblem, ProblemException, UnsupportedMediaTypeProblem
from starlette.datastructures import MutableHeaders
from starlette.types import Message, Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware

MAX_BODY_BYTES = 16384
"""The largest request body read, as the spec documents it."""
BODY_TIMEOUT = 10
"""Seconds a whole body may take to arrive: a client that trickles it is cut off (408), not waited for."""


class RequestBody(HTTPMiddleware):
    """Reads at most MAX_BODY_BYTES of a request body (413 past that, without reading on), within
    BODY_TIMEOUT (408 past that), and hands it on whole, with its true Content-Length and its media
    type in lower case, to the validation behind it. A body must say it is JSON (415 otherwise,
    and for any charset but UTF-8); a body on a method that takes none is dropped unread."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope = dict(scope)
        headers = MutableHeaders(scope=scope)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            del headers["content-type"], headers["content-length"], headers["transfer-encoding"]
            await self.app(scope, _replay(b"", receive), send)
            return
        declared = headers.get("content-length")
        if declared is not None:
            if not (declared.isascii() and declared.isdigit()):
                raise BadRequestProblem(detail="Content-Length is not a whole number.")
            if int(declared) > MAX_BODY_BYTES:
                raise _too_large()
        try:
            async with asyncio.timeout(BODY_TIMEOUT):
                body = await _read_at_most(receive, MAX_BODY_BYTES)
        except TimeoutError:
            raise ProblemException(
                status=408, title="Request Timeout", detail=f"The request body did not arrive within {BODY_TIMEOUT} s."
            ) from None
        if body is None:
            return  # the client went away
        if "content-type" in headers:
            headers["content-type"] = _media_type(headers["content-type"])
        elif body:
            raise UnsupportedMediaTypeProblem(detail="The body has no Content-Type; send it as application/json.")
        headers["content-length"] = str(len(body))
        await self.app(scope, _replay(body, receive), send)


async def _read_at_most(receive: Receive, limit: int) -> bytes | None:
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large()
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`body` as the whole request body, then the client's own channel (for its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _media_type(content_type: str) -> str:
    """`content_type` without parameters, in lower case (media types are case-insensitive);
    a charset other than UTF-8 is refused, since JSON is UTF-8."""
    media, *parameters = (part.strip() for part in content_type.split(";"))
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise UnsupportedMediaTypeProblem(detail=f"The body is {value.strip()}; send it as UTF-8.")
    return media.lower()


def _too_large() -> ProblemException:
    return ProblemException(
        status=413, title="Content Too Large", detail=f"The request body is larger than {MAX_BODY_BYTES} bytes."
    )
