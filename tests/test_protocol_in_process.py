"""edge/protocol.py's BoundedHttpToolsProtocol in process: bytes fed to it as a socket would, on an
event loop whose clock the test moves, and what a client would read back (tests/test_protocol.py
holds the same over real sockets, in a server of its own, where mutation testing cannot follow).

The transport is a socket's as far as the protocol can tell: what is written before `close()` is
what the client reads, what is written after is dropped (as asyncio's transports drop it), and
`close()` calls `connection_lost` on the next turn of the loop. One clock drives the loop's timers
and edge.protocol's own `time`, so HEAD_TIMEOUT and WARN_EVERY are their real values and a test
of them takes milliseconds."""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import uvloop
from uvicorn.config import Config
from uvicorn.server import ServerState

from edge import metrics, protocol
from edge.protocol import (
    BUSY_TURN,
    HEAD_TIMEOUT,
    MAX_HEAD_BYTES,
    MAX_URL_BYTES,
    WARN_EVERY,
    BoundedHttpToolsProtocol,
    accepting_from,
    protocol_class,
)

DATE = (b"date", b"Sun, 29 Nov 2026 23:00:00 GMT")
"""The one default header of the service's uvicorn (`server_header=False`): written first."""
GROUPS = b"GET /api/v1/groups HTTP/1.1\r\nHost: x\r\n"
"""A request's head without its last line end: a head that has not ended."""
GET = b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n"


class Clock:
    """The test's time: the loop's and, in place of the `time` module, edge.protocol's."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def perf_counter(self) -> float:
        return self.now


class ClockLoop(asyncio.SelectorEventLoop):
    """An event loop on `Clock`: its timers fire when the test moves the clock past them."""

    def __init__(self, clock: Clock) -> None:
        super().__init__()
        self.clock = clock

    def time(self) -> float:
        return self.clock.now

    def settle(self) -> None:
        """Runs what is ready (tasks, callbacks) until nothing is, the clock standing still."""
        for _ in range(50):
            self.call_soon(self.stop)
            self.run_forever()

    def advance_to(self, moment: float) -> None:
        """Moves the clock to `moment`, stopping at every timer on the way to run it."""
        while True:
            due = [handle.when() for handle in self._scheduled if not handle.cancelled()]  # type: ignore[attr-defined]
            if not due or min(due) > moment:
                break
            self.clock.now = max(self.clock.now, min(due))
            self.settle()
        self.clock.now = moment
        self.settle()


class Transport(asyncio.Transport):
    """A connection's server end, as the protocol sees a socket transport."""

    def __init__(self, loop: ClockLoop) -> None:
        super().__init__()
        self.loop = loop
        self.protocol: BoundedHttpToolsProtocol = None  # type: ignore[assignment]
        self.received = bytearray()  # what the client reads
        self.closed = False
        self.paused = False
        self.unread = bytearray()  # what the client sent while reading was paused

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self.closed:
            self.received += data

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        if self.unread:
            data, self.unread = bytes(self.unread), bytearray()
            self.loop.call_soon(self.protocol.data_received, data)

    def is_reading(self) -> bool:
        return not self.paused and not self.closed

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol  # type: ignore[assignment]

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self.protocol

    def send(self, data: bytes) -> None:
        """The client sends `data`: read at once, unless reading is paused or the server closed."""
        if self.closed:
            return
        if self.paused:
            self.unread += data
        else:
            self.protocol.data_received(data)
        self.loop.settle()

    def hang_up(self) -> None:
        """The client closes its end: the transport closes, as asyncio's does at end of file."""
        self.close()
        self.loop.settle()


class App:
    """A tiny ASGI app (what the app does is not the protocol's business): answers 200 "ok" after
    reading the body, or 413 without reading it where `early`, or waits for `release` first."""

    def __init__(self) -> None:
        self.held: asyncio.Event | None = None
        self.early = False
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "http"
        self.requests.append((scope["method"], scope["path"]))
        if self.held is not None:
            await self.held.wait()
        status = 413
        if not self.early:
            status, more = 200, True
            while more:
                message = await receive()
                more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


class Server:
    """A uvicorn server's share of a connection: its config, state and protocol class."""

    def __init__(self, loop: ClockLoop, cls: type[BoundedHttpToolsProtocol]) -> None:
        self.loop, self.cls, self.app = loop, cls, App()
        # As app.py runs uvicorn; its Server adds the date header to default_headers.
        self.config = Config(app=self.app, log_config=None, server_header=False, lifespan="off")
        self.state = ServerState()
        self.state.default_headers = [DATE]

    def connect(self) -> Transport:
        transport = Transport(self.loop)
        handler = self.cls(config=self.config, server_state=self.state, app_state={}, _loop=self.loop)
        transport.set_protocol(handler)
        handler.connection_made(transport)
        self.loop.settle()
        return transport


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(protocol, "time", clock)
    return clock


@pytest.fixture
def loop(clock: Clock) -> Iterator[ClockLoop]:
    loop = ClockLoop(clock)
    yield loop
    for task in asyncio.all_tasks(loop):
        task.cancel()
    loop.settle()
    loop.close()


@pytest.fixture
def server(loop: ClockLoop) -> Server:
    return Server(loop, protocol_class(1000))


def log_lines(stream: Any, message: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    return [line for line in lines if line["message"] == message]


def unrouted(status: int) -> float:
    """How many requests metrics has counted under operation "none" with `status`."""
    value = metrics.REGISTRY.get_sample_value("http_requests_total", {"operation": "none", "status": str(status)})
    return value or 0.0


def assert_problem(received: bytes | bytearray, status: int, reason: str, title: str, detail: str) -> str:
    """`received` is exactly one problem answer, the service's headers in order; its request id."""
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = [(name, value) for name, _, value in (line.partition(": ") for line in lines)]
    request_id = dict(headers).get("x-request-id", "")
    assert status_line == f"HTTP/1.1 {status} {reason}"
    assert headers == [
        ("date", DATE[1].decode()),
        ("content-type", "application/problem+json"),
        ("content-length", str(len(body))),
        ("x-request-id", request_id),
        ("x-content-type-options", "nosniff"),
        ("cache-control", "no-store"),
        ("connection", "close"),
    ]
    assert re.fullmatch("[0-9a-f]{32}", request_id)
    assert json.loads(body) == {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return request_id


def assert_answered_ok(received: bytes | bytearray, count: int = 1) -> None:
    assert bytes(received).count(b"HTTP/1.1 200 OK\r\n") == count
    assert bytes(received).endswith(b"ok")


# --- 414: a request target past MAX_URL_BYTES ---


def test_a_target_over_8192_bytes_is_a_414_problem_while_it_arrives_logged_and_counted(
    server: Server, loop: ClockLoop, json_logs: Any
):
    before = unrouted(414)
    target = b"/api/v1/groups?q=" + b"a" * (MAX_URL_BYTES + 1 - 17)
    client = server.connect()

    client.send(b"GET " + target[:5000])
    loop.advance_to(0.25)
    client.send(target[5000:])  # the target is 8193 bytes and has not ended
    answered = bytes(client.received)

    request_id = assert_problem(
        answered,
        414,
        "Request-URI Too Long",
        "URI Too Long",
        "The request's path and query are longer than 8192 bytes.",
    )
    assert client.closed
    (line,) = log_lines(json_logs, "request")
    assert line["status"] == 414
    assert line["request_id"] == request_id
    assert line["method"] == "GET"
    assert line["path"] == target[:997].decode() + "..."  # a client's text, cut for the log
    assert line["duration_ms"] == 250.0  # from the request's first byte
    assert unrouted(414) == before + 1


def test_a_target_of_exactly_8192_bytes_reaches_the_app(server: Server):
    target = b"/api/v1/groups?q=" + b"a" * (MAX_URL_BYTES - 17)
    client = server.connect()

    client.send(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")

    assert_answered_ok(client.received)
    assert not client.closed
    assert server.app.requests == [("GET", "/api/v1/groups")]


# --- 431: a head past MAX_HEAD_BYTES that has not ended ---


def big_head(size: int) -> bytes:
    """A head of `size` bytes that has not ended: its last header's value goes on."""
    start = GROUPS + b"X-Big: "
    return start + b"a" * (size - len(start))


def test_a_head_of_exactly_max_head_bytes_waits_and_one_byte_more_is_a_431_problem(
    server: Server, loop: ClockLoop, json_logs: Any
):
    before = unrouted(431)
    client = server.connect()

    for start in range(0, MAX_HEAD_BYTES, 4096):  # in reads as a socket would give them
        client.send(big_head(MAX_HEAD_BYTES)[start : start + 4096])
    at_the_bound = (bytes(client.received), client.closed)
    loop.advance_to(1.5)
    client.send(b"a")

    assert at_the_bound == (b"", False)
    request_id = assert_problem(
        client.received,
        431,
        "Request Header Fields Too Large",
        "Request Header Fields Too Large",
        "The request's headers are larger than 16384 bytes.",
    )
    assert client.closed
    (line,) = log_lines(json_logs, "request")
    assert (line["status"], line["request_id"], line["method"], line["path"]) == (
        431,
        request_id,
        "GET",
        "/api/v1/groups",
    )
    assert line["duration_ms"] == 1500.0
    assert unrouted(431) == before + 1


def test_a_head_past_the_bound_is_refused_in_the_read_that_crosses_it(server: Server):
    client = server.connect()

    client.send(big_head(MAX_HEAD_BYTES - 10))
    waiting = client.received == b""
    client.send(b"a" * 20)  # past the bound by 10, in one read

    assert waiting
    assert bytes(client.received).startswith(b"HTTP/1.1 431 ")
    assert client.closed


def test_a_whole_head_in_one_read_is_the_apps_to_judge_whatever_its_size(server: Server):
    # The bound is on a head that has not ended; edge.middleware.paths holds whole ones to 16 KiB.
    client = server.connect()

    client.send(big_head(MAX_HEAD_BYTES + 1000) + b"\r\n\r\n")

    assert_answered_ok(client.received)
    assert server.app.requests == [("GET", "/api/v1/groups")]


def test_the_bound_counts_each_head_anew_on_a_keep_alive_connection(server: Server):
    client = server.connect()

    client.send(GROUPS + b"\r\n")
    client.send(big_head(MAX_HEAD_BYTES))  # the next head, exactly at the bound
    at_the_bound = (bytes(client.received).count(b"HTTP/1.1"), client.closed)
    client.send(b"a")

    assert at_the_bound == (1, False)
    answers = bytes(client.received).split(b"ok", 1)
    assert answers[0].startswith(b"HTTP/1.1 200 OK")
    assert answers[1].startswith(b"HTTP/1.1 431 ")
    assert client.closed


def test_blank_lines_after_an_answer_count_toward_the_bound_to_the_byte(server: Server):
    # They begin no request, but they are what the connection sends in place of a head.
    client = server.connect()

    client.send(GET)
    client.send(b"\r\n" * (MAX_HEAD_BYTES // 2))  # exactly the bound
    at_the_bound = (bytes(client.received).count(b"HTTP/1.1"), client.closed)
    client.send(b"\r")

    assert at_the_bound == (1, False)
    assert bytes(client.received).split(b"ok", 1)[1].startswith(b"HTTP/1.1 431 ")
    assert client.closed


def test_a_head_within_the_bound_after_an_answer_is_served(server: Server):
    client = server.connect()

    client.send(GROUPS + b"\r\n")
    client.send(big_head(MAX_HEAD_BYTES - 100))
    client.send(b"\r\n\r\n")

    assert_answered_ok(client.received, 2)
    assert not client.closed


def test_a_pipelined_head_is_counted_from_the_read_after_the_one_it_began_in(server: Server):
    # The read that ended the request before it is not counted (what of it is the new head's is
    # not known): the bound holds one read late, and the answer before is not cut off.
    server.app.held = asyncio.Event()
    client = server.connect()

    client.send(GET)
    client.send(big_head(MAX_HEAD_BYTES + 10))  # while the GET is answered
    waiting = (bytes(client.received), client.closed)
    server.app.held.set()
    loop = client.loop
    loop.settle()
    answered = (bytes(client.received).count(b"HTTP/1.1 200 OK"), client.closed)
    client.send(b"a" * MAX_HEAD_BYTES)
    at_the_bound = client.closed
    client.send(b"a")

    assert waiting == (b"", False)
    assert answered == (1, False)
    assert not at_the_bound
    assert bytes(client.received).split(b"ok", 1)[1].startswith(b"HTTP/1.1 431 ")
    assert client.closed


def test_a_body_is_no_head_however_long_and_the_head_after_it_is_counted_from_its_own_start(server: Server):
    client = server.connect()
    body = b"a" * (3 * MAX_HEAD_BYTES)

    client.send(b"POST /api/v1/study-sessions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body))
    for start in range(0, len(body), 10000):
        client.send(body[start : start + 10000])
    client.send(big_head(MAX_HEAD_BYTES - 100))
    waiting = (bytes(client.received).count(b"HTTP/1.1"), client.closed)
    client.send(b"\r\n\r\n")

    assert waiting == (1, False)
    assert_answered_ok(client.received, 2)


def test_a_body_still_arriving_after_an_early_answer_is_no_head_and_the_connection_serves_on(
    server: Server, loop: ClockLoop
):
    server.app.early = True  # answers 413 without reading the body
    client = server.connect()

    client.send(b"POST /api/v1/study-sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n")
    early = bytes(client.received)
    for step in range(20):  # 2 s between reads: 40 s in all, past any head timer
        loop.advance_to(2.0 * (step + 1))
        client.send(b"a" * 10000)
    server.app.early = False
    client.send(GET)

    assert early.startswith(b"HTTP/1.1 413 ")
    assert bytes(client.received).count(b"HTTP/1.1 ") == 2
    assert bytes(client.received).endswith(b"HTTP/1.1 200 OK\r\ndate: %s\r\ncontent-length: 2\r\n\r\nok" % DATE[1])
    assert not client.closed


# --- 408: a head not whole HEAD_TIMEOUT after its clock started ---


def test_a_head_not_whole_5_s_after_the_connection_opened_is_a_408_problem_logged_and_counted(
    server: Server, loop: ClockLoop, json_logs: Any
):
    before = unrouted(408)
    client = server.connect()

    loop.advance_to(1.25)
    client.send(GROUPS)  # and then nothing
    loop.advance_to(HEAD_TIMEOUT - 0.001)
    waiting = (bytes(client.received), client.closed)
    loop.advance_to(HEAD_TIMEOUT)

    assert waiting == (b"", False)
    request_id = assert_problem(
        client.received, 408, "Request Timeout", "Request Timeout", "The request's head did not arrive within 5 s."
    )
    assert client.closed
    (line,) = log_lines(json_logs, "request")
    assert (line["status"], line["request_id"], line["method"], line["path"]) == (
        408,
        request_id,
        "GET",
        "/api/v1/groups",
    )
    assert line["duration_ms"] == 3750.0  # from its first byte, at 1.25 s
    assert unrouted(408) == before + 1


def test_a_connection_that_sends_nothing_is_closed_after_5_s_without_an_answer_nor_a_log_line(
    server: Server, loop: ClockLoop, json_logs: Any
):
    before = unrouted(408)
    client = server.connect()

    loop.advance_to(HEAD_TIMEOUT - 0.001)
    open_before = not client.closed
    loop.advance_to(HEAD_TIMEOUT)

    assert open_before
    assert client.closed
    assert client.received == b""
    assert log_lines(json_logs, "request") == []
    assert unrouted(408) == before


def test_after_an_answer_the_next_heads_5_s_run_from_its_first_byte(server: Server, loop: ClockLoop, json_logs: Any):
    client = server.connect()

    client.send(GET)
    loop.advance_to(3.0)  # idle, within uvicorn's 5 s keep-alive
    client.send(GROUPS)  # the next head, never ending
    loop.advance_to(3.0 + HEAD_TIMEOUT - 0.001)
    waiting = (bytes(client.received).count(b"HTTP/1.1"), client.closed)
    loop.advance_to(3.0 + HEAD_TIMEOUT)

    assert waiting == (1, False)
    answers = bytes(client.received).split(b"HTTP/1.1 ")
    assert answers[1].startswith(b"200 OK")
    assert answers[2].startswith(b"408 Request Timeout")
    assert client.closed
    (line,) = [line for line in log_lines(json_logs, "request") if line["status"] == 408]
    assert line["duration_ms"] == HEAD_TIMEOUT * 1000


def test_blank_lines_after_an_answer_do_not_hold_the_connection_open(server: Server, loop: ClockLoop):
    # Any byte stops uvicorn's keep-alive timer, and a blank line begins no request.
    client = server.connect()

    client.send(GET)
    closed_at = None
    for second in range(1, 30):
        loop.advance_to(float(second))
        if client.closed:
            closed_at = second
            break
        client.send(b"\r\n")

    assert closed_at == 1 + HEAD_TIMEOUT  # 5 s after the first blank line
    assert bytes(client.received).count(b"HTTP/1.1 200 OK") == 1


def test_a_head_in_parts_within_5_s_is_served(server: Server, loop: ClockLoop):
    client = server.connect()

    client.send(GROUPS)
    loop.advance_to(HEAD_TIMEOUT - 0.5)
    client.send(b"\r\n")
    loop.advance_to(30.0)  # answered; then uvicorn's keep-alive ends the connection

    assert_answered_ok(client.received)
    assert client.closed


def test_a_pipelined_head_waits_while_the_request_before_it_is_answered(
    server: Server, loop: ClockLoop, json_logs: Any
):
    server.app.held = asyncio.Event()
    client = server.connect()

    client.send(GET)  # answered only when the app is released
    loop.advance_to(1.0)
    client.send(b"GET /api/v1/groups ")
    loop.advance_to(2.0)
    client.send(b"HTTP/1.1\r\nHost: x\r\n")  # and the head never ends
    loop.advance_to(1.0 + HEAD_TIMEOUT + 0.5)  # past its 5 s: still answering the one before
    waiting = (bytes(client.received), client.closed)
    server.app.held.set()
    loop.settle()
    answered = (bytes(client.received).count(b"HTTP/1.1 200 OK"), client.closed)
    loop.advance_to(1.0 + 2 * HEAD_TIMEOUT)

    assert waiting == (b"", False)
    assert answered == (1, False)
    assert bytes(client.received).split(b"ok", 1)[1].startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert client.closed
    (line,) = [line for line in log_lines(json_logs, "request") if line["status"] == 408]
    assert line["duration_ms"] == 2 * HEAD_TIMEOUT * 1000  # from the pipelined head's first byte


def test_a_pipelined_request_refused_while_the_one_before_is_answered_closes_without_cutting_into_it(
    server: Server, loop: ClockLoop, json_logs: Any
):
    server.app.held = asyncio.Event()
    client = server.connect()

    client.send(GET)
    client.send(b"GET /" + b"a" * MAX_URL_BYTES)  # a 414, while the GET is unanswered
    server.app.held.set()
    loop.settle()

    assert client.closed
    assert client.received == b""  # neither the 414 nor, after the close, the GET's answer
    assert [line["status"] for line in log_lines(json_logs, "request")] == [414]


# --- uvicorn's own answers to malformed HTTP: problems like the service's ---

MALFORMED = {
    "conflicting lengths": (
        b"POST /api/v1/study-sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST",
        "/api/v1/study-sessions",
        "Transfer-Encoding can't be present with Content-Length",
    ),
    "bare LF": (GROUPS.replace(b"\r\n", b"\n") + b"\n", "GET", "/api/v1/groups", "Expected CRLF after version"),
    "folded header": (
        GROUPS + b"X-A: a\r\n b\r\n\r\n",
        "GET",
        "/api/v1/groups",
        "Unexpected whitespace after header value",
    ),
}


@pytest.mark.parametrize("name", MALFORMED)
def test_the_answer_to_malformed_http_is_a_400_problem_logged_and_counted(
    server: Server, loop: ClockLoop, json_logs: Any, name: str
):
    raw, method, path, error = MALFORMED[name]
    before = unrouted(400)
    client = server.connect()

    loop.advance_to(0.5)
    client.send(raw[:20])
    loop.advance_to(0.7501234)
    client.send(raw[20:])

    request_id = assert_problem(
        client.received, 400, "Bad Request", "Bad Request", f"The request is not valid HTTP/1.1: {error}."
    )
    assert client.closed
    assert server.app.requests == []
    (line,) = log_lines(json_logs, "request")
    assert (line["status"], line["request_id"], line["method"], line["path"]) == (400, request_id, method, path)
    assert line["duration_ms"] == 250.123  # in ms, to the microsecond
    assert unrouted(400) == before + 1


def test_uvicorns_own_400_hook_answers_a_problem_too(server: Server, json_logs: Any):
    # HttpToolsProtocol calls send_400_response from the data_received this class replaces; where
    # uvicorn calls it, the client gets a problem, not uvicorn's text/plain.
    before = unrouted(400)
    client = server.connect()
    client.send(b"GET /api/v1/groups HTTP/1.1\r\n")

    client.protocol.send_400_response("Invalid HTTP request received.")
    client.loop.settle()

    request_id = assert_problem(
        client.received,
        400,
        "Bad Request",
        "Bad Request",
        "The request is not valid HTTP/1.1: Invalid HTTP request received.",
    )
    assert client.closed
    (line,) = log_lines(json_logs, "request")
    assert (line["status"], line["request_id"]) == (400, request_id)
    assert unrouted(400) == before + 1


def test_a_refusal_before_any_request_began_logs_no_method_nor_path(server: Server, loop: ClockLoop, json_logs: Any):
    client = server.connect()

    client.send(b"\r\n")  # not a request yet, and nothing after it
    loop.advance_to(HEAD_TIMEOUT)

    assert bytes(client.received).startswith(b"HTTP/1.1 408 ")
    (line,) = log_lines(json_logs, "request")
    assert (line["method"], line["path"]) == ("-", "")


def test_blank_lines_after_an_answer_are_not_logged_as_the_request_before_them(
    server: Server, loop: ClockLoop, json_logs: Any
):
    client = server.connect()

    client.send(GET)
    client.send(b"\r\n")
    loop.advance_to(HEAD_TIMEOUT)

    assert bytes(client.received).split(b"ok", 1)[1].startswith(b"HTTP/1.1 408 ")
    (line,) = log_lines(json_logs, "request")
    assert (line["method"], line["path"], line["status"]) == ("-", "", 408)


@pytest.mark.parametrize("after_a_request", [False, True], ids=["first", "after a request"])
def test_bytes_that_are_not_http_are_a_400_logged_without_a_method(
    server: Server, json_logs: Any, after_a_request: bool
):
    client = server.connect()
    if after_a_request:
        client.send(GET)

    client.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS client hello's start

    assert bytes(client.received).count(b"HTTP/1.1 400 Bad Request\r\n") == 1
    (line,) = log_lines(json_logs, "request")
    assert (line["method"], line["path"], line["status"]) == ("-", "", 400)


def test_a_pipelined_head_that_stalls_in_the_read_it_began_in_is_a_408_not_a_silent_close(
    server: Server, loop: ClockLoop, json_logs: Any
):
    server.app.held = asyncio.Event()
    client = server.connect()

    client.send(GET)
    loop.advance_to(1.0)
    client.send(GROUPS)  # while the GET is answered; and then nothing
    server.app.held.set()
    loop.settle()
    loop.advance_to(1.0 + HEAD_TIMEOUT)

    answers = bytes(client.received).split(b"ok", 1)
    assert answers[0].startswith(b"HTTP/1.1 200 OK")
    assert answers[1].startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert client.closed
    (line,) = log_lines(json_logs, "request")
    assert (line["method"], line["path"], line["status"]) == ("GET", "/api/v1/groups", 408)


# --- MAX_CONNECTIONS ---


def test_connections_past_max_connections_are_closed_at_once_and_logged_once_a_minute_with_counts(
    loop: ClockLoop, json_logs: Any
):
    server = Server(loop, protocol_class(3))
    server.app.held = asyncio.Event()
    held = [server.connect() for _ in range(3)]
    for client in held:
        client.send(GET)  # being answered: open as long as the app takes

    past = [server.connect() for _ in range(2)]  # both closed at 0 s: one line, saying 1
    loop.advance_to(30.0)
    past += [server.connect()]  # closed at 30 s, within the minute: no line
    loop.advance_to(WARN_EVERY - 0.001)
    past += [server.connect()]  # not yet a minute since the line: no line
    loop.advance_to(WARN_EVERY)
    past += [server.connect()]  # a minute since the line: a line saying 4 (all since the last)
    held[0].hang_up()
    taken = server.connect()  # a place again
    taken.send(GET)
    server.app.held.set()
    loop.settle()

    assert [(client.closed, bytes(client.received)) for client in past] == [(True, b"")] * 5
    for client in [*held[1:], taken]:
        assert_answered_ok(client.received)
        assert not client.closed
    warnings = log_lines(json_logs, "connection limit reached: new connections are closed at once")
    assert [(line["levelname"], line["max_connections"], line["closed"]) for line in warnings] == [
        ("WARNING", 3, 1),
        ("WARNING", 3, 4),
    ]


def test_max_connections_is_what_protocol_class_was_given_where_the_open_files_limit_leaves_room(loop: ClockLoop):
    server = Server(loop, protocol_class(5))

    taken = [server.connect() for _ in range(5)]
    refused = server.connect()

    assert not any(client.closed for client in taken)
    assert refused.closed


def test_max_connections_that_the_open_files_limit_just_fits_is_not_said_to_be_lowered(
    loop: ClockLoop, json_logs: Any, monkeypatch: pytest.MonkeyPatch, open_files: tuple[int, int]
):
    _, hard = open_files
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit of open files here")
    monkeypatch.setattr(BoundedHttpToolsProtocol, "_told", False)  # a serving process's first connection

    Server(loop, protocol_class(hard - 64)).connect()

    assert log_lines(json_logs, "MAX_CONNECTIONS lowered to fit the open-files limit") == []


@pytest.fixture
def open_files() -> Iterator[tuple[int, int]]:
    """The process's open-files limits, put back after the test."""
    limits = resource.getrlimit(resource.RLIMIT_NOFILE)
    yield limits
    resource.setrlimit(resource.RLIMIT_NOFILE, limits)


def test_the_open_files_limit_is_raised_to_the_hard_limit(open_files: tuple[int, int]):
    _, hard = open_files
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 256), hard))

    protocol_class(10)

    assert resource.getrlimit(resource.RLIMIT_NOFILE) == (hard, hard)


def test_max_connections_past_the_open_files_limit_is_lowered_and_said_once_at_the_first_connection(
    loop: ClockLoop, json_logs: Any, monkeypatch: pytest.MonkeyPatch, open_files: tuple[int, int]
):
    _, hard = open_files
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard limit of open files here")
    monkeypatch.setattr(BoundedHttpToolsProtocol, "_told", False)  # a serving process's first connection
    server = Server(loop, protocol_class(hard))
    logged_before = log_lines(json_logs, "MAX_CONNECTIONS lowered to fit the open-files limit")

    server.connect()
    server.connect()
    Server(loop, protocol_class(10)).connect()

    lowered = log_lines(json_logs, "MAX_CONNECTIONS lowered to fit the open-files limit")
    assert logged_before == []
    assert [(line["levelname"], line["max_connections"], line["open_files_limit"]) for line in lowered] == [
        ("WARNING", hard - 64, hard)
    ]


def test_at_an_open_files_limit_under_the_64_kept_back_max_connections_is_one():
    # In a child process: a process may lower its hard limit, never raise it again.
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        code = 1
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (60, 60))
            cls = protocol_class(1000)
            os.write(write_end, f"{cls.max_connections} {cls.open_files_limit}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        printed = pipe.read()
    _, status = os.waitpid(child, 0)

    assert os.waitstatus_to_exitcode(status) == 0
    assert printed.split() == ["1", "60"]
    assert protocol_class(1000).max_connections == 1000  # here, where the limit is higher


def test_on_a_busy_worker_connections_waiting_behind_a_new_one_are_accepted_together(clock: Clock):
    # libuv (uvloop's, since 1.45) accepts one connection per turn of the loop, and on a busy
    # worker a turn is every request in flight: the 64th of a burst of new connections waited
    # about a second for its first answer (docs/benchmarks.md).
    alone = turns_to_accept(clock, accepting=False, turn=0.01)

    together = turns_to_accept(clock, accepting=True, turn=0.01)

    assert len(together) <= 4, f"connections after each turn: {together}"
    assert len(alone) >= 12, f"libuv alone, connections after each turn: {alone}"


def test_on_a_busy_worker_the_connections_waiting_on_each_listening_socket_are_accepted_together(clock: Clock):
    # gunicorn binds one listening socket for each address it is given.
    alone = turns_to_accept(clock, accepting=False, turn=0.01, listening=2)

    together = turns_to_accept(clock, accepting=True, turn=0.01, listening=2)

    assert len(together) <= 4, f"connections after each turn: {together}"
    assert len(alone) >= 6, f"libuv alone, connections after each turn: {alone}"


def test_on_an_idle_worker_connections_are_left_to_libuvs_turns_which_share_them_among_workers(clock: Clock):
    # An idle worker's turns are quick, and a burst is shared among the workers that way; one
    # that took a whole burst at once would keep those keep-alive connections from the others.
    assert turns_to_accept(clock, accepting=True, turn=0.0) == turns_to_accept(clock, accepting=False, turn=0.0)


def turns_to_accept(clock: Clock, *, accepting: bool, turn: float, listening: int = 1) -> list[int]:
    """On uvloop and `listening` real listening sockets (gunicorn binds one per address) with 30
    connections waiting in their backlogs, how many connections the server has after each turn of
    the loop, turned one at a time, each `turn` seconds long on edge.protocol's `clock` (other
    requests' work; the test's own time does not count, however loaded the machine); every
    connection is then served. `accepting`: whether the protocol accepts from the listening
    sockets itself (`accepting_from`), or leaves it to libuv."""
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(listening)]
    http = protocol_class(1000)
    if accepting:
        accepting_from(http, listeners)
    loop = uvloop.new_event_loop()
    config = Config(app=App(), log_config=None, server_header=False, lifespan="off")
    config.load()
    state = ServerState()
    servers = [
        loop.run_until_complete(
            loop.create_server(lambda: http(config=config, server_state=state, app_state={}, _loop=loop), sock=listener)
        )
        for listener in listeners
    ]
    clients = [socket.create_connection(listeners[i % listening].getsockname()) for i in range(30)]
    try:
        turns: list[int] = []
        while len(state.connections) < 30 and len(turns) < 60:
            loop.call_soon(setattr, clock, "now", clock.now + turn)
            loop.call_soon(loop.stop)
            loop.run_forever()
            turns.append(len(state.connections))
        for client in clients:
            client.sendall(GET)
        answers = [loop.run_until_complete(loop.sock_recv(client, 4096)) for client in clients]
        assert all(answer.startswith(b"HTTP/1.1 200 OK") for answer in answers)
        return turns
    finally:
        for client in clients:
            client.close()
        for server in servers:
            server.close()
        for connection in list(state.connections):
            connection.transport.close()
        loop.run_until_complete(asyncio.sleep(0.01))
        loop.close()
        for listener in listeners:
            listener.close()


def test_a_listening_socket_closed_by_the_shutdown_is_passed_over(loop: ClockLoop, clock: Clock):
    # Shutting down, uvicorn closes the listening sockets; a connection it accepted just before, on
    # a busy worker, finds none to accept behind it (EBADF, not EAGAIN), and is served.
    listener = socket.create_server(("127.0.0.1", 0))
    http = protocol_class(1000)
    accepting_from(http, [listener])
    listener.close()
    server = Server(loop, http)
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: errors.append(context))
    client = Transport(loop)
    handler = http(config=server.config, server_state=server.state, app_state={}, _loop=loop)
    client.set_protocol(handler)

    handler.connection_made(client)
    clock.now += BUSY_TURN  # the turn it came in was a busy one: the look at the waiting is due
    loop.settle()
    client.send(GET)

    assert errors == []
    assert_answered_ok(client.received)
