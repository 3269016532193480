"""Hostile input: each a clear 4xx problem, nothing stored, and the next request still served."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine
from starlette import datastructures
from starlette.testclient import TestClient
from starlette.types import Message

from app import SPEC, create_app
from edge import metrics
from edge.middleware import MAX_BODY_BYTES
from edge.middleware import body as body_module
from edge.settings import Settings
from edge.validation import MAX_INT_DIGITS
from tests.conftest import asgi_scope, count_sessions
from tests.servers import service

GOOD = {"group_id": 1, "study_activity_id": 1}
PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    return response.json()


def still_served(client: TestClient, engine: Engine, stored: int = 0) -> None:
    """Nothing was stored by what came before, and the service still answers."""
    assert count_sessions(engine) == stored
    assert client.post("/api/v1/study-sessions", json=GOOD).status_code == 201


@pytest.mark.parametrize(
    "query",
    ["page=1&page=2", "per_page=5&per_page=5", "page=1&per_page=2&page=1"],
)
def test_a_query_parameter_given_twice_is_a_400_naming_it(client: TestClient, query: str):
    problem = assert_problem(client.get(f"/api/v1/study-sessions?{query}"), 400)

    assert "times; send it once" in problem["errors"][0]["detail"]


@pytest.mark.parametrize(
    "query",
    ["x=" + "a" * 60000, "&".join(f"p{i}=1" for i in range(5000)), "page=" + "9" * 5000],
    ids=["long value", "5000 parameters", "long number"],
)
def test_huge_queries_are_414_and_the_answer_stays_small(client: TestClient, engine: Engine, query: str):
    response = client.get(f"/api/v1/study-sessions?{query}")

    problem = assert_problem(response, 414)
    assert (problem["title"], problem["detail"]) == ("URI Too Long", "The query is longer than 2048 bytes.")
    assert len(response.content) < 1000
    still_served(client, engine)


@pytest.mark.parametrize("path", ["/api/v1/groups", "/api/study-sessions", "/api/v1/healthz", "/api/v1/nowhere"])
def test_more_than_20_query_parameters_are_a_400_and_none_is_parsed(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, path: str
):
    parsed: list[object] = []

    def parse_qsl(*args: object, **kwargs: object) -> list[tuple[str, str]]:
        parsed.append(args)
        return []

    monkeypatch.setattr(datastructures, "parse_qsl", parse_qsl)

    response = client.get(path + "?" + "&".join(f"p{i}=1" for i in range(21)))

    problem = assert_problem(response, 400)
    assert problem["detail"] == "The query has more than 20 parameters."
    assert problem["errors"] == [{"detail": "The query has more than 20 parameters.", "pointer": ""}]
    assert parsed == []


def test_a_query_of_exactly_2048_bytes_is_taken(client: TestClient):
    query = "page=" + "1".rjust(2048 - len("page="), "0")

    assert client.get(f"/api/v1/groups?{query}").status_code == 200


def test_headers_over_16_kib_are_a_431_naming_the_limit(client: TestClient):
    response = client.get("/api/v1/groups", headers={"x-big": "a" * 20000})

    assert assert_problem(response, 431) == {
        "type": "about:blank",
        "title": "Request Header Fields Too Large",
        "detail": "The request's headers are larger than 16384 bytes.",
        "status": 431,
    }


ID_PATHS = [
    ("GET", "/study-sessions/{n}"),
    ("GET", "/study-sessions/{n}/reviews"),
    ("POST", "/study-sessions/{n}/reviews"),
    ("GET", "/study-sessions/1/reviews/{n}"),
    ("GET", "/study-sessions/{n}/reviews/1"),
    ("GET", "/groups/{n}/words"),
]


@pytest.mark.parametrize(("method", "path"), ID_PATHS)
@pytest.mark.parametrize("sign", ["", "-", "+", "%2D"])
def test_an_id_of_5000_digits_is_a_400_naming_it_counted_and_never_a_traceback(
    client: TestClient, json_logs: io.StringIO, base: str, method: str, path: str, sign: str
):
    name = "review_id" if path.endswith("{n}") and "reviews/" in path else "id"
    before = metrics.REQUESTS.labels(metrics.UNROUTED, "400")._value.get()

    id_ = sign + "7" * 5000  # routing's int converter takes a sign too
    response = client.request(method, base + path.format(n=id_), json={"word_id": 1, "correct": True})

    problem = assert_problem(response, 400)
    assert [e["parameter"] for e in problem["errors"]] == [name]
    assert metrics.REQUESTS.labels(metrics.UNROUTED, "400")._value.get() == before + 1
    assert "Traceback" not in json_logs.getvalue() and "ERROR" not in json_logs.getvalue()


def test_an_id_of_exactly_1000_digits_reaches_its_operation_whose_parameter_check_names_it(
    client: TestClient, base: str
):
    # Routing's int() reads 1000 digits (Python's own limit is 4300); only more never reach it.
    before = metrics.REQUESTS.labels("get_study_session", "400")._value.get()
    unrouted = metrics.REQUESTS.labels(metrics.UNROUTED, "400")._value.get()

    response = client.get(f"{base}/study-sessions/" + "7" * MAX_INT_DIGITS)

    problem = assert_problem(response, 400)
    assert [e["parameter"] for e in problem["errors"]] == ["id"]
    assert metrics.REQUESTS.labels("get_study_session", "400")._value.get() == before + 1
    assert metrics.REQUESTS.labels(metrics.UNROUTED, "400")._value.get() == unrouted


def test_a_path_with_a_slash_more_is_a_404_problem_not_a_redirect_and_the_path_without_is_served(client: TestClient):
    answers = [
        client.get(path, follow_redirects=False) for path in ("/api/v1/groups/", "/api/v1/groups/1/words/", "//")
    ]

    for response in answers:
        assert assert_problem(response, 404) == {
            "type": "about:blank",
            "title": "Not Found",
            "detail": "Nothing is at this path.",
            "status": 404,
        }
    assert [client.get(path).status_code for path in ("/api/v1/groups", "/api/v1/groups/1/words")] == [200, 200]


def test_a_5000_digit_segment_of_a_path_the_spec_has_not_is_a_404(client: TestClient):
    response = client.get("/api/v1/nowhere/" + "7" * 5000)

    assert assert_problem(response, 404)["detail"] == "Nothing is at this path."


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        ('\ufeff{"group_id": 1, "study_activity_id": 1}'.encode(), "not valid JSON"),
        (b'{"group_id": 1, "study_activity_id": 1, "created_at": "2026-01-01T00:00:00\\u0000Z"}', "invalid"),
        (b'{"group_id": 1, "study_activity_id": 1, "created_at": "2026-01-01\\nT00:00:00Z"}', "invalid"),
        (b'{"group_id": 1, "study_activity_id": 1, "created_at": "2026-01-01T00:00:00Z\\u202e"}', "invalid"),
        (b'{"group_id\\u0000": 1, "study_activity_id": 1}', "invalid"),
        (b'{"group_id": 1, "study_activity_id": 1}\x00', "not valid JSON"),
    ],
)
def test_a_bom_nul_and_control_characters_are_400(client: TestClient, engine: Engine, content: bytes, detail: str):
    response = client.post("/api/v1/study-sessions", content=content, headers={"content-type": "application/json"})

    assert detail in assert_problem(response, 400)["detail"]
    still_served(client, engine)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/study-sessions/1%2F..%2F2",
        "/api/v1/study-sessions/..%2Fgroups",
        "/api/v1/%2e%2e/groups",
        "/api/v1/study-sessions/%2e%2e",
        "/api/v1/study-sessions/1%00",
        "/api/v1/..;/groups",
    ],
)
def test_encoded_slashes_and_dot_dot_in_paths_are_4xx_problems(client: TestClient, path: str):
    response = client.get(path)

    assert response.status_code in (400, 404), response.text
    assert response.headers["content-type"] == PROBLEM


DOCUMENT = yaml.safe_load(SPEC.read_text())
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE")
PATHS = {path.replace("{id}", "1").replace("{review_id}", "1"): item for path, item in DOCUMENT["paths"].items()}


@pytest.mark.parametrize("path", PATHS)
def test_every_method_a_path_does_not_take_is_a_405_with_allow(client: TestClient, path: str):
    item = PATHS[path]
    allowed = {m.upper() for m in item} | ({"HEAD"} if "get" in item else set())

    for method in METHODS:
        if method in allowed:
            continue
        response = client.request(method, f"/api/v1{path}")
        assert response.status_code == 405, (method, path, response.text)
        assert set(response.headers["allow"].split(", ")) == allowed
        if method != "HEAD":
            assert response.headers["content-type"] == PROBLEM


def asgi_post(
    service,
    headers: list[tuple[bytes, bytes]],
    chunks: Sequence[bytes | None],
    pause: float = 0.0,
    answer: bytearray | None = None,
) -> tuple[int, int]:
    """POSTs `chunks` straight through ASGI, `pause` seconds apart; the status, and the chunks read
    (the answer's body goes into `answer`, where given). A chunk of None is a message without a
    body, which ASGI allows."""
    read = 0
    started: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        if read:
            await asyncio.sleep(pause)
        read += 1
        message: Message = {"type": "http.request", "more_body": read < len(chunks)}
        if chunks[read - 1] is not None:
            message["body"] = chunks[read - 1]
        return message

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.append(message)
        elif answer is not None:
            answer.extend(message.get("body", b""))

    scope = asgi_scope("POST", "/api/v1/study-sessions", [(b"content-type", b"application/json"), *headers])
    asyncio.run(service(scope, receive, send))
    return started[0]["status"], read


def test_a_body_longer_than_its_content_length_says_is_still_cut_at_the_limit(settings: Settings, engine: Engine):
    chunks = [b" " * 1024] * 40  # 40 KiB that claim to be 10 bytes

    status, read = asgi_post(create_app(settings, engine), [(b"content-length", b"10")], chunks)

    assert status == 413 and read <= 17
    assert count_sessions(engine) == 0


def test_a_body_shorter_than_its_content_length_says_is_read_as_it_is(settings: Settings, engine: Engine):
    status, _ = asgi_post(create_app(settings, engine), [(b"content-length", b"500")], [b'{"group_id": 1,'])

    assert status == 400
    assert count_sessions(engine) == 0


def test_headers_of_exactly_16_kib_are_taken_and_one_byte_more_is_a_431(settings: Settings, engine: Engine):
    # A header weighs its name, its value and 4 bytes (": " and CRLF); asgi_post sends Host and
    # Content-Type, 18 + 32 bytes, and X-Big weighs 9 bytes besides its value.
    fill = 16384 - 18 - 32 - 9
    service = create_app(settings, engine)

    at_limit, _ = asgi_post(service, [(b"x-big", b"a" * fill)], [json.dumps(GOOD).encode()])
    over, _ = asgi_post(service, [(b"x-big", b"a" * (fill + 1))], [json.dumps(GOOD).encode()])

    assert (at_limit, over) == (201, 431)


def test_a_body_of_exactly_the_limit_is_taken(client: TestClient, engine: Engine):
    body = json.dumps(GOOD).encode().ljust(MAX_BODY_BYTES)

    response = client.post("/api/v1/study-sessions", content=body, headers={"content-type": "application/json"})

    assert response.status_code == 201, response.text
    assert count_sessions(engine) == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_body_over_the_limit_is_a_413_naming_the_limit_whatever_the_method_and_path(client: TestClient, method: str):
    # No operation takes a PUT or a PATCH yet: their bodies are bounded all the same, before routing's 404.
    response = client.request(
        method, "/api/v1/nowhere", content=b" " * (MAX_BODY_BYTES + 1), headers={"content-type": "application/json"}
    )

    assert assert_problem(response, 413) == {
        "type": "about:blank",
        "title": "Content Too Large",
        "detail": f"The request body is larger than {MAX_BODY_BYTES} bytes.",
        "status": 413,
    }


def test_a_request_message_without_a_body_is_an_empty_chunk_as_asgi_has_it(settings: Settings, engine: Engine):
    status, read = asgi_post(create_app(settings, engine), [], [None, json.dumps(GOOD).encode(), None])

    assert (status, read) == (201, 3)
    assert count_sessions(engine) == 1


def test_utf8_is_the_one_charset_taken_and_any_other_is_a_415_naming_it(client: TestClient, engine: Engine):
    def post(charset: str):
        content_type = f"application/json; charset={charset}"
        return client.post("/api/v1/study-sessions", json=GOOD, headers={"content-type": content_type})

    taken = post("utf8")
    refused = {charset: post(charset) for charset in ("utf-16", "Xutf8", "utf-8=x")}  # a charset is all after its "="

    assert taken.status_code == 201, taken.text
    assert {charset: assert_problem(response, 415)["detail"] for charset, response in refused.items()} == {
        charset: f"The body is {charset}; send it as UTF-8." for charset in refused
    }
    assert count_sessions(engine) == 1


def test_a_body_trickled_in_is_cut_off_with_a_408(settings: Settings, engine: Engine, monkeypatch):
    monkeypatch.setattr(body_module, "BODY_TIMEOUT", 0.5)
    chunks = [b'{"group_id": 1, ', b'"study_activity_id": 1', b"}"]

    started = time.monotonic()
    answer = bytearray()
    status, read = asgi_post(create_app(settings, engine), [], chunks, pause=0.4, answer=answer)

    assert status == 408 and read == 2
    problem = json.loads(answer)
    assert (problem["title"], problem["detail"]) == ("Request Timeout", "The request body did not arrive within 0.5 s.")
    assert time.monotonic() - started < 2
    assert count_sessions(engine) == 0


@pytest.mark.parametrize(
    "value", [b"abc\r\nSet-Cookie: stolen=1", b'x"}\n{"message": "forged', b"\x00\x01\x7f", "é".encode()]
)
def test_a_request_id_that_tries_to_inject_is_refused_and_never_echoed(client: TestClient, value: bytes):
    response = client.get("/api/v1/groups", headers=[(b"X-Request-ID", value)])

    assert assert_problem(response, 400)["errors"][0]["parameter"] == "X-Request-ID"
    assert response.headers["x-request-id"].isalnum()
    assert "set-cookie" not in response.headers


def test_log_lines_cannot_be_forged_through_what_a_client_controls(client: TestClient, json_logs: io.StringIO):
    forged = '{"levelname": "ERROR", "message": "forged"}'
    client.get("/api/v1/groups%0A" + forged.replace(" ", "%20"), headers={"X-Request-ID": "a\nb"})
    client.get("/api/v1/study-sessions/1%0D%0A" + "x" * 10)
    client.post("/api/v1/study-sessions", json={"group_id": "\n" + forged, "study_activity_id": 1})

    lines = json_logs.getvalue().splitlines()
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert all(record["message"] != "forged" for record in records)
    assert [r["status"] for r in records if r["message"] == "request"] == [404, 400, 400]
    assert any("\n" in r["path"] for r in records if r["message"] == "request")  # kept, escaped


def test_a_logged_path_is_cut_to_1000_characters(client: TestClient, json_logs: io.StringIO):
    client.get("/api/v1/" + "x" * 64000)
    client.get("/api/v1/study-sessions/" + "1" * 5000)
    exactly = "/api/v1/" + "y" * (1000 - len("/api/v1/"))
    client.get(exactly)

    paths = [json.loads(line)["path"] for line in json_logs.getvalue().splitlines() if '"request"' in line]
    assert [len(path) for path in paths] == [1000, 1000, 1000]
    assert all(path.endswith("...") for path in paths[:2])
    assert paths[2] == exactly  # at the limit: whole, not cut


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_over_a_real_socket_malformed_http_is_refused_and_the_next_request_served(
    tmp_path: Path, database_url: str, engine: Engine
):
    with service(tmp_path, database_url) as (url, _):
        port = int(url.rsplit(":", 1)[1])

        def exchange(raw: bytes, wait: float = 5.0) -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
                with suppress(ConnectionError):  # the server may refuse before it has all of it
                    sock.sendall(raw)
                answer = b""
                try:
                    while chunk := sock.recv(65536):
                        answer += chunk
                except (TimeoutError, ConnectionError):
                    pass
                return answer

        post = b"POST /api/v1/study-sessions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

        def head_of(size: int) -> bytes:  # a GET whose head weighs `size` bytes
            start = b"GET /api/v1/groups HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "
            return start + b"a" * (size - len(start) - 4) + b"\r\n\r\n"

        lying = post + b"Content-Length: 5\r\nConnection: close\r\n\r\n" + json.dumps(GOOD).encode()
        answers = {
            "headers just over the limit": exchange(head_of(20_000)),
            "headers just under the limit": exchange(head_of(16_000)),
            "lying length": exchange(lying),
            "chunked, too long": exchange(
                post + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                + b"".join(b"400\r\n" + b" " * 1024 + b"\r\n" for _ in range(40)) + b"0\r\n\r\n"
            ),
            "no length, no chunks": exchange(post + b"Connection: close\r\n\r\n" + json.dumps(GOOD).encode(), wait=3),
        }  # fmt: skip
        after = exchange(b"GET /api/v1/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")

    statuses = {name: int(answer.split(b" ", 2)[1]) if answer else None for name, answer in answers.items()}
    assert statuses == {
        "headers just over the limit": 431,
        "headers just under the limit": 200,
        "lying length": 400,  # the 5 bytes read are not JSON; the rest is no request
        "chunked, too long": 413,
        "no length, no chunks": 400,  # HTTP/1.1 frames it as a POST without a body; the rest is no request
    }
    bodies = {name: json.loads(answer.split(b"\r\n\r\n", 1)[1]) for name, answer in answers.items()}
    assert bodies["headers just over the limit"]["detail"] == "The request's headers are larger than 16384 bytes."
    assert b"content-type: application/problem+json" in answers["no length, no chunks"]
    assert bodies["no length, no chunks"]["detail"] == "RequestBody is required"
    assert after.startswith(b"HTTP/1.1 200")
    assert count_sessions(engine) == 0


def test_a_client_that_goes_away_mid_body_is_logged_and_counted_as_gone_not_as_a_failure(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
):
    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"group_id": 1', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return chunks.pop(0) if chunks else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = asgi_scope(
        "POST", "/api/v1/study-sessions", [(b"content-type", b"application/json"), (b"content-length", b"100")]
    )
    requests = metrics.REQUESTS.labels
    counted = {status: requests("create_study_session", status)._value.get() for status in ("499", "500")}

    with caplog.at_level(logging.INFO):
        asyncio.run(create_app(settings, engine)(scope, receive, send))

    assert sent == []
    assert [r.__dict__["status"] for r in caplog.records if r.getMessage() == "request"] == [499]
    assert requests("create_study_session", "499")._value.get() == counted["499"] + 1
    assert requests("create_study_session", "500")._value.get() == counted["500"]
    assert count_sessions(engine) == 0
