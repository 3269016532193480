"""edge/protocol.py, uvicorn's HTTP protocol bounded: over real sockets, on both commands (the
README's and production's), and pinned to the uvicorn it was written for."""

from __future__ import annotations

import hashlib
import inspect
import json
import pkgutil
import socket
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.protocol import HEAD_TIMEOUT, RELIED_ON, UVICORN_VERSION
from tests.servers import DEV_RUN, GUNICORN, processes, service

COMMANDS = {"python app.py": DEV_RUN, "gunicorn": GUNICORN}
PROBLEM = "application/problem+json"


def test_uvicorn_is_the_version_the_protocol_was_written_for():
    assert version("uvicorn") == UVICORN_VERSION, "read edge/protocol.py again, then update it"


@pytest.mark.parametrize("name", RELIED_ON)
def test_what_the_protocol_relies_on_is_unchanged(name: str):
    found: Any = pkgutil.resolve_name(name)

    digest = hashlib.sha256(inspect.getsource(found).encode()).hexdigest()[:16]

    assert digest == RELIED_ON[name], f"{name} changed: read edge/protocol.py again"


@pytest.fixture(params=COMMANDS, ids=list(COMMANDS))
def command(request: pytest.FixtureRequest) -> tuple[str | Path, ...]:
    return COMMANDS[request.param]


@contextmanager
def served(tmp_path: Path, database_url: str, command: tuple[str | Path, ...], **env: str) -> Iterator[tuple[int, Any]]:
    """The service on one worker process: its port, and the process that serves."""
    with service(tmp_path, database_url, command, WORKERS="1", **env) as (url, server):
        yield int(url.rsplit(":", 1)[1]), server


def serving_pids(server: Any) -> list[int]:
    """The process that answers (python app.py), or gunicorn's workers."""
    return [server.pid, *processes(1, server.pid)]


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def read_all(sock: socket.socket) -> bytes:
    answer = b""
    with suppress(TimeoutError, ConnectionResetError):
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes `sock` (without a word) before its timeout."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def server_log(folder: Path) -> list[dict[str, Any]]:
    """The JSON lines of the service's log in `folder` (served() starts one service a test)."""
    (log,) = folder.glob("server-*.log")
    return [json.loads(line) for line in log.read_text().splitlines() if line[:1] == "{"]


def accepted(port: int) -> int:
    """How many connections to 127.0.0.1:`port` the server has accepted: established sockets of
    that local port with a file of their own (one still in the accept queue has inode 0)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "01" and fields[9] != "0":
            count += 1
    return count


def healthz_once_answering(port: int) -> httpx.Response:
    """/api/v1/healthz as soon as the server takes a request (within 10 s): on a loaded machine
    it may count closed connections a moment after they close."""
    deadline = time.monotonic() + 10
    while True:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=10)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def parse(answer: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split(" ", 2)[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_a_head_that_never_ends_is_refused_while_it_arrives_and_memory_stays_bounded(
    tmp_path: Path, database_url: str, command: tuple[str | Path, ...]
):
    with served(tmp_path, database_url, command) as (port, server):
        pids = serving_pids(server)
        before = rss_kib(pids)
        answers, sent = [], []
        for _ in range(2):  # two 64 MB headers, one after the other, neither ever ending
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(b"GET /api/v1/groups HTTP/1.1\r\nHost: x\r\nX-Big: ")
                total = 0
                with suppress(OSError):
                    while total < 64 * 2**20:
                        total += sock.send(b"a" * 2**20)
                sent.append(total)
                answers.append(read_all(sock))
        grown = rss_kib(pids) - before
        after = httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz")

    assert all(total < 64 * 2**20 for total in sent), "the server read a 64 MB head to its end"
    for answer in answers:
        assert answer == b"" or parse(answer)[0] == 431
    assert grown < 20 * 1024, f"the serving process grew by {grown} KiB"
    assert after.status_code == 200


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_a_stalled_head_is_a_408_problem_and_a_silent_connection_is_closed(
    tmp_path: Path, database_url: str, command: tuple[str | Path, ...]
):
    with served(tmp_path, database_url, command) as (port, _), ExitStack() as stack:
        stalled = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT * 4))
        silent = stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT * 4))
        stalled.sendall(b"GET /api/v1/groups HTTP/1.1\r\nHost: x\r\n")  # and then nothing
        answer, silent_closed = read_all(stalled), closed_by_server(silent)

    status, headers, body = parse(answer)
    assert status == 408
    assert headers["content-type"] == PROBLEM
    assert json.loads(body)["status"] == 408
    assert silent_closed


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_connections_past_max_connections_are_closed_and_logged_once(
    tmp_path: Path, database_url: str, command: tuple[str | Path, ...]
):
    with served(tmp_path, database_url, command, MAX_CONNECTIONS="20") as (port, _):
        with ExitStack() as stack:
            held = [stack.enter_context(socket.create_connection(("127.0.0.1", port))) for _ in range(20)]
            deadline = time.monotonic() + HEAD_TIMEOUT / 2  # the held ones are closed at HEAD_TIMEOUT
            while accepted(port) < 20:
                assert time.monotonic() < deadline, f"the server took {accepted(port)} of 20 connections"
                time.sleep(0.05)
            # Under HEAD_TIMEOUT: a connection the server took would be closed silently at that time too.
            past = [
                stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=HEAD_TIMEOUT - 1))
                for _ in range(10)
            ]
            refused = [closed_by_server(sock) for sock in past]
            for sock in held:
                sock.close()
            after = healthz_once_answering(port)
        log = server_log(tmp_path)

    assert refused == [True] * 10
    assert after.status_code == 200
    warnings = [r for r in log if r["message"].startswith("connection limit reached")]
    assert len(warnings) == 1
    assert warnings[0]["max_connections"] == 20


MALFORMED = {
    "conflicting lengths": b"POST /api/v1/study-sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "bare LF": b"GET /api/v1/groups HTTP/1.1\nHost: x\n\n",
    "folded header": b"GET /api/v1/groups HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
    "target over 8 KB": b"GET /api/v1/groups?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
}


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_the_servers_own_answers_to_malformed_http_are_problems_logged_and_counted(
    tmp_path: Path, database_url: str, command: tuple[str | Path, ...]
):
    with served(tmp_path, database_url, command, LOG_LEVEL="INFO") as (port, _):
        answers = {}
        for name, raw in MALFORMED.items():
            with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
                sock.sendall(raw)
                answers[name] = parse(read_all(sock))
        scraped = httpx.get(f"http://127.0.0.1:{port}/api/v1/metrics").text
        log = server_log(tmp_path)

    for name, (status, headers, body) in answers.items():
        assert status == (414 if name == "target over 8 KB" else 400), name
        assert headers["content-type"] == PROBLEM, name
        assert json.loads(body)["status"] == status
        assert len(headers["x-request-id"]) == 32
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
    assert 'http_requests_total{operation="none",status="400"} 3.0' in scraped
    assert 'http_requests_total{operation="none",status="414"} 1.0' in scraped
    logged = [(r["status"], r["request_id"]) for r in log if r["message"] == "request" and r["status"] >= 400]
    assert sorted(logged) == sorted((status, headers["x-request-id"]) for status, headers, _ in answers.values())
    assert all(len(r.get("path", "")) <= 1000 for r in log)


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_at_an_open_files_limit_of_128_idle_connections_cannot_shut_new_clients_out(
    tmp_path: Path, database_url: str, command: tuple[str | Path, ...]
):
    limited = ("prlimit", "--nofile=128:128", *command)  # prlimit execs the command
    with served(tmp_path, database_url, limited) as (port, _), ExitStack() as stack:
        idle = []
        with suppress(OSError):
            for _ in range(120):  # what exhausted the files of the stock server
                idle.append(stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=1)))
        time.sleep(HEAD_TIMEOUT + 1)
        after = httpx.get(f"http://127.0.0.1:{port}/api/v1/healthz", timeout=10)
        log = server_log(tmp_path)

    assert after.status_code == 200
    lowered = [r for r in log if r["message"] == "MAX_CONNECTIONS lowered to fit the open-files limit"]
    assert lowered and lowered[0]["max_connections"] == 128 - 64
    assert len([r for r in log if r["message"].startswith("connection limit reached")]) == 1


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_keep_alive_and_pipelined_requests_are_served_as_before(
    tmp_path: Path, database_url: str, command: tuple[str | Path, ...]
):
    get = b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with (
        served(tmp_path, database_url, command) as (port, _),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(get + get)  # pipelined: two requests in one write
        answers = b""
        # Until both bodies are in (the heads may come before the last of them), or the server closes.
        while answers.count(b'{"status": "ok"}') < 2 and (chunk := sock.recv(65536)):
            answers += chunk
        time.sleep(2)  # idle between requests, within the keep-alive time
        sock.sendall(get[:-2])
        time.sleep(1)  # a head in two parts, well within HEAD_TIMEOUT
        sock.sendall(b"Connection: close\r\n\r\n")
        last = read_all(sock)

    assert answers.count(b"HTTP/1.1 200") == 2
    assert last.startswith(b"HTTP/1.1 200")


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_blank_lines_between_requests_do_not_hold_a_keep_alive_connection_open(
    tmp_path: Path, database_url: str, command: tuple[str | Path, ...]
):
    # Any byte stops uvicorn's keep-alive timer, and a blank line begins no message: the head
    # timer must run from the first byte after an answer all the same.
    with (
        served(tmp_path, database_url, command) as (port, _),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while b"HTTP/1.1 200" not in answer:
            answer += sock.recv(65536)
        answered = time.monotonic()
        closed_after = None
        sock.settimeout(2)
        while closed_after is None and time.monotonic() - answered < 30:
            try:
                chunk = sock.recv(65536)  # an answer to the blank lines, if any, then the close
            except TimeoutError:
                with suppress(OSError):
                    sock.sendall(b"\r\n")
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                closed_after = time.monotonic() - answered

    assert closed_after is not None, "blank lines every 2 s held the connection open for 30 s"
    assert closed_after < 2 * HEAD_TIMEOUT + 1


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_a_body_still_arriving_after_an_early_answer_is_no_head_and_the_connection_serves_on(
    tmp_path: Path, database_url: str, command: tuple[str | Path, ...]
):
    with (
        served(tmp_path, database_url, command) as (port, _),
        socket.create_connection(("127.0.0.1", port), timeout=10) as sock,
    ):
        sock.sendall(
            b"POST /api/v1/study-sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200000\r\n\r\n"
        )
        early = sock.recv(65536)  # the 413, before the body
        for _ in range(20):
            sock.sendall(b"a" * 10000)
        sock.sendall(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        rest = read_all(sock)

    assert early.startswith(b"HTTP/1.1 413")
    assert b"HTTP/1.1 200" in rest
    assert b"HTTP/1.1 431" not in rest
