"""The one module that reaches into uvicorn's internals: its httptools HTTP/1.1 protocol, bounded
where it sets no bound; written for uvicorn 0.54.0 (constraints.txt pins it, and
tests/test_protocol.py fails when what this relies on changes). docs/decisions.md says why.

uvicorn's httptools parser reads a request's head into memory however long it grows, and waits
for it however long it takes; it takes every connection the operating system hands it. Here:
- a request target longer than MAX_URL_BYTES is a 414, and a head that has grown past
  MAX_HEAD_BYTES without ending is a 431, both while it arrives (one read past the bound at most);
- a connection whose request head is not whole HEAD_TIMEOUT seconds after it began (or after the
  connection opened, or after the first byte that followed an answer, blank lines included) is
  answered 408 and closed (closed without an answer if it sent nothing);
- past MAX_CONNECTIONS open connections in the process a new one is closed at once, and the log
  says so once a minute at most, with how many were closed;
- on a busy worker, the connections waiting to be accepted behind a new one are accepted
  together: libuv, under uvloop, accepts one connection per turn of the event loop (since libuv
  1.45), and a busy worker's turn is every request in flight, so the last of a burst of new
  connections waited one turn for each before it (a second, at 64 at once). A worker that is not
  busy leaves them to libuv, whose quick turns share a burst among the workers: one that took a
  whole burst at once would keep its keep-alive connections from the others;
- the answers uvicorn gives itself to malformed HTTP are problems like the service's own (with
  `X-Request-ID`, `nosniff`, `no-store`), logged and counted with operation "none"."""

from __future__ import annotations

import asyncio
import resource
import socket
import time
import uuid
from collections.abc import Iterable
from typing import Any, ClassVar

import httptools
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from edge import metrics
from edge.logs import log
from edge.middleware.paths import MAX_HEADER_BYTES
from edge.middleware.request_log import logged
from edge.problems import starlette_problem

UVICORN_VERSION = "0.54.0"
"""The version this module was written for and tested with."""
RELIED_ON = {
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.__init__": "4f08999410347141",
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.connection_made": "6efb565ff3d36b91",
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.connection_lost": "c91a4c9bf2e29c55",
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.data_received": "010a7ae59a5d3b1a",
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.on_message_begin": "96d377fdc7c2baef",
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.on_url": "37be44e962b04ca8",
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.on_headers_complete": "1ea8589acfad92d8",
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.on_message_complete": "1fbad42dc31fc01f",
    "uvicorn.protocols.http.httptools_impl.HttpToolsProtocol.send_400_response": "ae5a4a3782b646fd",
}
"""What this module copies or extends in uvicorn, by the first 16 hex digits of the SHA-256 of its
source in UVICORN_VERSION: a change there means this module must be read again."""

MAX_URL_BYTES = 8192
"""The longest request target (path and query) taken; longer is a 414."""
MAX_HEAD_BYTES = MAX_URL_BYTES + MAX_HEADER_BYTES + 1024
"""The most an unfinished head may weigh (request line, headers, line ends) before it is a 431.
Heads within it are then held to MAX_HEADER_BYTES of headers by edge.middleware.paths."""
HEAD_TIMEOUT = 5.0
"""Seconds a request's head may take to arrive whole, from its first byte (or the connection's
opening) on."""
RESERVED_FILES = 64
"""Open files kept back from MAX_CONNECTIONS for the database, logs, metrics and the listener."""
WARN_EVERY = 60.0
"""Seconds between two log lines about connections closed at the bound."""
BUSY_TURN = 0.005
"""Seconds a turn of the event loop takes on a worker too busy to accept one connection a turn:
past it, the connections waiting behind a new one are accepted together."""


class Refused(Exception):
    """A request refused before it reached the app: its status, title and detail."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the bounds above; `protocol_class` sets MAX_CONNECTIONS."""

    max_connections: ClassVar[int] = 1000
    listeners: ClassVar[tuple[socket.socket, ...]] = ()  # set by `accepting_from`
    _accepting: ClassVar[bool] = False  # whether a look at the waiting connections is due
    open_files_limit: ClassVar[int | None] = None  # set where it lowered max_connections
    _told: ClassVar[bool] = False
    _closed_at_bound: ClassVar[int] = 0
    _warned_at: ClassVar[float] = -WARN_EVERY

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_bytes: int | None = 0  # bytes of the head arriving; None once it is whole
        self._head_began = time.perf_counter()
        self._in_message = False  # from a message's first byte to its body's last

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if not BoundedHttpToolsProtocol._told:  # in the serving process, once its log is set up
            BoundedHttpToolsProtocol._told = True
            if self.open_files_limit is not None:
                log.warning(
                    "MAX_CONNECTIONS lowered to fit the open-files limit",
                    extra={"max_connections": self.max_connections, "open_files_limit": self.open_files_limit},
                )
        full = len(self.connections) >= self.max_connections
        super().connection_made(transport)
        if full:
            self._closed_at_bound_once()
            transport.close()
            return
        self._arm_head_timer()
        cls = type(self)
        if cls.listeners and not cls._accepting:
            cls._accepting = True
            self.loop.call_soon(self._accept_waiting, time.monotonic())

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        # uvicorn's own, with its answers to malformed HTTP and our refusals made problems.
        self._unset_keepalive_if_required()
        if self._head_timer is None and not self._in_message and (self.cycle is None or self.cycle.response_complete):
            # Bytes on an idle connection stop the keep-alive timer above; the head's clock starts
            # now, not at its message's beginning, which blank lines between requests never reach.
            self._head_bytes, self._head_began = 0, time.perf_counter()
            self._arm_head_timer()
        # A head that begins inside this chunk (after a request before it) counts from the next.
        counting = self._head_bytes is not None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as error:
            refused = error.__context__
            if not isinstance(refused, Refused):
                refused = Refused(400, "Bad Request", f"The request is not valid HTTP/1.1: {error}.")
            self._refuse(refused)
            return
        if counting and self._head_bytes is not None and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(
                    Refused(
                        431,
                        "Request Header Fields Too Large",
                        f"The request's headers are larger than {MAX_HEADER_BYTES} bytes.",
                    )
                )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_message = True
        self._head_bytes = 0
        self._head_began = time.perf_counter()
        if self._head_timer is None:
            self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        if len(self.url) > MAX_URL_BYTES:
            raise Refused(414, "URI Too Long", f"The request's path and query are longer than {MAX_URL_BYTES} bytes.")

    def on_headers_complete(self) -> None:
        self._disarm_head_timer()
        self._head_bytes = None
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_message = False  # a body still arriving after an early answer is no head
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        self._refuse(Refused(400, "Bad Request", f"The request is not valid HTTP/1.1: {msg}"))

    def _arm_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(HEAD_TIMEOUT, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._arm_head_timer()  # a pipelined head waits while the request before it is answered
            return
        if not self._head_bytes and not self._in_message:
            # Nothing of a request came: nothing to answer. (A head that began in the read that
            # ended the request before it is not counted in _head_bytes, but it has begun.)
            self.transport.close()
            return
        self._refuse(Refused(408, "Request Timeout", f"The request's head did not arrive within {HEAD_TIMEOUT:g} s."))

    def _refuse(self, refused: Refused) -> None:
        """Answers `refused` as a problem, closes the connection, logs and counts it."""
        self._disarm_head_timer()
        request_id = uuid.uuid4().hex
        body = bytes(starlette_problem(refused.status, refused.title, refused.detail).body)
        head = [STATUS_LINE[refused.status]]
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(body)).encode()),
            (b"x-request-id", request_id.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"cache-control", b"no-store"),
            (b"connection", b"close"),
        ]
        head += [b"%s: %s\r\n" % header for header in headers]
        answering = self.cycle is not None and not self.cycle.response_complete
        if answering:  # a pipelined request's refusal must not cut into the answer before it
            self.transport.close()
        elif not self.transport.is_closing():
            self.transport.write(b"".join([*head, b"\r\n", body]))
            self.transport.close()
        self._head_bytes = None
        # The refused request's own method and target, as far as they came: uvicorn keeps the last
        # request's `url` until the next one begins, and a parser that has read no method of this
        # request gives the one before, or DELETE (llhttp's method 0).
        target = self.url if self._in_message else b""
        log.info(
            "request",
            extra={
                "method": self.parser.get_method().decode("ascii") if target else "-",
                "path": logged(target.decode("latin-1")),
                "status": refused.status,
                "duration_ms": round((time.perf_counter() - self._head_began) * 1000, 3),
                "request_id": request_id,
            },
        )
        metrics.REQUESTS.labels(metrics.UNROUTED, str(refused.status)).inc()

    def _accept_waiting(self, since: float) -> None:
        """On the turn of the event loop after the one that was running at `since`, if that turn
        was long, accepts every connection waiting on the listening sockets, each made a
        connection of its own on the next turn."""
        type(self)._accepting = False
        if time.monotonic() - since < BUSY_TURN:
            return
        for listener in self.listeners:
            while True:
                try:
                    accepted, _ = listener.accept()
                except OSError:  # none waiting; or closed (shutting down), or out of files: uvloop's turn
                    break
                self.loop.create_task(self.loop.connect_accepted_socket(self._another, accepted))

    def _another(self) -> BoundedHttpToolsProtocol:
        """A protocol for another connection of the same server, as uvicorn makes one."""
        return type(self)(config=self.config, server_state=self.server_state, app_state=self.app_state, _loop=self.loop)

    def _closed_at_bound_once(self) -> None:
        cls = type(self)
        cls._closed_at_bound += 1
        now = time.monotonic()
        if now - cls._warned_at >= WARN_EVERY:
            log.warning(
                "connection limit reached: new connections are closed at once",
                extra={"max_connections": self.max_connections, "closed": cls._closed_at_bound},
            )
            cls._warned_at, cls._closed_at_bound = now, 0


def raise_open_files_limit() -> int:
    """Raises this process's soft limit of open files to its hard limit; the soft limit after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def protocol_class(max_connections: int) -> type[BoundedHttpToolsProtocol]:
    """The protocol for uvicorn's `http` setting, at most `max_connections` open connections a
    process (fewer where the open-files limit, raised as far as it goes, leaves no room)."""
    soft = raise_open_files_limit()
    attributes: dict[str, Any] = {"max_connections": max_connections}
    if soft != resource.RLIM_INFINITY and soft - RESERVED_FILES < max_connections:
        # Said in the log at the first connection: gunicorn reads this before any log is set up.
        attributes = {"max_connections": max(1, soft - RESERVED_FILES), "open_files_limit": soft}
    return type("BoundedHttpToolsProtocol", (BoundedHttpToolsProtocol,), attributes)


def accepting_from(protocol: type[BoundedHttpToolsProtocol], listeners: Iterable[socket.socket]) -> None:
    """Makes `protocol`, on a busy worker, accept the connections waiting on `listeners` (the
    server's own listening sockets, without TLS) when it gets a new one. The event loop's
    `create_server` makes them non-blocking, as asyncio's contract has it: an accept with none
    waiting never holds the loop."""
    protocol.listeners = tuple(listeners)
