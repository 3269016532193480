"""A request's head within bounds: its headers not too large, its query short and with few
parameters, its path one the spec can have."""

from __future__ import annotations

from connexion.exceptions import ProblemException
from starlette.exceptions import HTTPException
from starlette.types import Receive, Scope, Send

from edge.middleware.base import HTTPMiddleware
from edge.problems import invalid
from edge.validation import MAX_INT_DIGITS

MAX_HEADER_BYTES = 16384
"""The most a request's headers may weigh together (edge.protocol bounds a head while it arrives)."""
MAX_QUERY_BYTES = 2048
"""The longest query taken; longer is a 414. No operation takes more than a few parameters."""
MAX_QUERY_PARAMETERS = 20
"""The most query parameters taken; more is a 400. Parsing many costs time that grows faster
than their number, so they are counted, not parsed."""


class RequestHead(HTTPMiddleware):
    """Headers over MAX_HEADER_BYTES are a 431; a query over MAX_QUERY_BYTES a 414, one of more
    than MAX_QUERY_PARAMETERS a 400. A path with a trailing slash is a 404, as the spec has no such
    path: Starlette would answer a 307 to the path without it, an absolute URL that the spec does
    not declare. A path segment of more digits than any id has never reaches the routing, whose
    int() would fail on it: edge.problems.RoutingErrors answers it, a 400 naming the parameter."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if sum(len(name) + len(value) + 4 for name, value in scope["headers"]) > MAX_HEADER_BYTES:
            raise ProblemException(
                status=431,
                title="Request Header Fields Too Large",
                detail=f"The request's headers are larger than {MAX_HEADER_BYTES} bytes.",
            )
        query: bytes = scope["query_string"]
        if len(query) > MAX_QUERY_BYTES:
            raise ProblemException(
                status=414, title="URI Too Long", detail=f"The query is longer than {MAX_QUERY_BYTES} bytes."
            )
        if query.count(b"&") >= MAX_QUERY_PARAMETERS:
            detail = f"The query has more than {MAX_QUERY_PARAMETERS} parameters."
            raise invalid(detail, [{"detail": detail, "pointer": ""}])
        if any(_too_many_digits(part) for part in scope["path"].split("/")):
            raise HTTPException(404)
        if len(scope["path"]) > 1 and scope["path"].endswith("/"):
            raise ProblemException(status=404, title="Not Found", detail="Nothing is at this path.")
        await self.app(scope, receive, send)


def _too_many_digits(part: str) -> bool:
    """Whether `part` is a whole number, signed or not (as routing's int converter takes them),
    of more digits than any id has."""
    digits = part[1:] if part[:1] in ("-", "+") else part
    return len(digits) > MAX_INT_DIGITS and digits.isascii() and digits.isdigit()
