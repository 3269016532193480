"""POST /study-sessions and the reads around it, through HTTP, on a real SQLite file."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from starlette.staticfiles import StaticFiles
from starlette.testclient import TestClient
from starlette.types import Message

from app import create_app
from edge.middleware import MAX_BODY_BYTES
from edge.settings import Settings
from storage.engine import make_engine
from tests.conftest import admin_engine, count_sessions

PROBLEM = "application/problem+json"
MAX_ID = 2**63 - 1
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
"""Each status's title, as RFC 9110 names it (Python 3.11's `HTTPStatus` has older names for some)."""


def post(client: TestClient, base: str, body: object, **headers: str):
    return client.post(f"{base}/study-sessions", json=body, headers=headers)


def assert_problem(response, status: int) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == status
    assert body["title"] == TITLES[status]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["type"] == "about:blank"
    return body


def pointers(problem: dict) -> set[str]:
    return {error.get("pointer", error.get("parameter")) for error in problem["errors"]}


# Creating ----------------------------------------------------------------------------------


def test_valid_post_is_201_with_location_body_and_a_row(client: TestClient, engine: Engine, base: str):
    response = post(client, base, {"group_id": 1, "study_activity_id": 2})

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert response.headers["location"] == f"{base}/study-sessions/{body['id']}"
    assert body["group_id"] == 1
    assert body["group_name"] == "Core Verbs"
    assert body["study_activity_id"] == 2
    assert body["study_activity_name"] == "Flashcards"
    assert body["created_at"].endswith("Z")
    created = datetime.fromisoformat(body["created_at"])
    assert abs(created - datetime.now(UTC)) < timedelta(seconds=30)
    assert count_sessions(engine) == 1


def test_client_chosen_id_and_time_are_kept_and_the_time_is_returned_in_utc(client: TestClient, base: str):
    response = post(
        client, base, {"id": 42, "group_id": 1, "study_activity_id": 1, "created_at": "2026-01-02T03:04:05+02:00"}
    )

    assert response.status_code == 201
    assert response.json()["id"] == 42
    assert response.json()["created_at"] == "2026-01-02T01:04:05Z"
    assert response.headers["location"] == f"{base}/study-sessions/42"


@pytest.mark.parametrize("chosen", [1, 2, MAX_ID])
def test_a_client_chosen_id_never_makes_a_later_idless_post_fail(client: TestClient, engine: Engine, chosen: int):
    assert post(client, "/api/v1", {"id": chosen, "group_id": 1, "study_activity_id": 1}).status_code == 201

    later = [post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1}) for _ in range(3)]

    assert [r.status_code for r in later] == [201, 201, 201]
    assert len({r.json()["id"] for r in later} | {chosen}) == 4
    assert count_sessions(engine) == 4


def test_missing_fields_are_400_listing_each_one_and_store_nothing(client: TestClient, engine: Engine, base: str):
    problem = assert_problem(post(client, base, {}), 400)

    assert pointers(problem) == {"/group_id", "/study_activity_id"}
    assert count_sessions(engine) == 0


def test_wrong_types_are_400_listing_every_violation(client: TestClient, engine: Engine):
    body = {"group_id": "1", "study_activity_id": 1.5, "id": True, "created_at": 12}

    problem = assert_problem(post(client, "/api/v1", body), 400)

    assert pointers(problem) == {"/group_id", "/study_activity_id", "/id", "/created_at"}
    assert count_sessions(engine) == 0


@pytest.mark.parametrize("value", [0, -1, MAX_ID + 1, 10**30])
def test_out_of_range_ids_are_400(client: TestClient, engine: Engine, value: int):
    problem = assert_problem(post(client, "/api/v1", {"id": value, "group_id": value, "study_activity_id": 1}), 400)

    assert pointers(problem) == {"/id", "/group_id"}
    assert count_sessions(engine) == 0


def test_a_date_time_without_offset_is_400(client: TestClient, engine: Engine):
    problem = assert_problem(
        post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1, "created_at": "2026-01-02T03:04:05"}), 400
    )

    assert pointers(problem) == {"/created_at"}
    assert count_sessions(engine) == 0


def test_unknown_properties_are_400_naming_each(client: TestClient, engine: Engine):
    problem = assert_problem(
        post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1, "name": "x", "a/b": 1}), 400
    )

    assert pointers(problem) == {"/name", "/a~1b"}
    assert count_sessions(engine) == 0


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'{"group_id": 1,', "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[" * 5000 + b"]" * 5000, "nested too deeply"),
        (b'{"group_id": NaN, "study_activity_id": 1}', "not valid JSON"),
        (b'{"group_id": 1, "group_id": 2, "study_activity_id": 1}', "not valid JSON"),
        (b'{"group_id": 1' + b"0" * 4400 + b', "study_activity_id": 1}', "not valid JSON"),
        (b"", "RequestBody is required"),
        (b"null", "null"),
        (b"[]", "invalid"),
    ],
)
def test_malformed_bodies_are_400_never_500(client: TestClient, engine: Engine, content: bytes, detail: str):
    response = client.post("/api/v1/study-sessions", content=content, headers={"content-type": "application/json"})

    problem = assert_problem(response, 400)
    assert detail in problem["detail"]
    assert problem["errors"]
    assert count_sessions(engine) == 0


def test_an_empty_body_is_a_400_whose_one_error_points_at_the_whole_body(client: TestClient, engine: Engine):
    # Connexion's own 400 for it lists no violations; the problem gives it the one every 400 has.
    response = client.post("/api/v1/study-sessions", content=b"", headers={"content-type": "application/json"})

    problem = assert_problem(response, 400)
    assert problem["errors"] == [{"detail": "RequestBody is required", "pointer": ""}]
    assert count_sessions(engine) == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_a_body_that_is_not_json_is_415(client: TestClient, engine: Engine, content_type: str):
    response = client.post("/api/v1/study-sessions", content=b'{"group_id": 1}', headers={"content-type": content_type})

    problem = assert_problem(response, 415)
    assert problem["detail"] == f"The body is {content_type}; this operation takes application/json."
    assert count_sessions(engine) == 0


def test_a_body_with_an_empty_content_type_is_415_saying_so(client: TestClient, engine: Engine):
    response = client.post("/api/v1/study-sessions", content=b'{"group_id": 1}', headers={"content-type": ""})

    problem = assert_problem(response, 415)
    assert problem["detail"] == "The body has an empty Content-Type; send it as application/json."
    assert count_sessions(engine) == 0


def asgi_request(
    service, headers: list[tuple[bytes, bytes]], chunks: int, method: str = "POST", path: str = "/api/v1/study-sessions"
) -> tuple[int, int]:
    """Sends straight through ASGI a body of `chunks` chunks of 1 KiB; the status, and how many
    chunks were read. (A test client would buffer the whole body before the app saw any of it.)"""
    read = 0
    started: list[Message] = []

    async def receive() -> Message:
        nonlocal read
        read += 1
        return {"type": "http.request", "body": b" " * 1024, "more_body": read < chunks}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("testserver", 80),
    }
    asyncio.run(service(scope, receive, send))
    return started[0]["status"], read


JSON_BODY = (b"content-type", b"application/json")


def test_a_body_declared_over_the_limit_is_413_before_any_of_it_is_read(settings: Settings, engine: Engine):
    declared = str(MAX_BODY_BYTES + 1).encode()

    status, read = asgi_request(create_app(settings, engine), [JSON_BODY, (b"content-length", declared)], chunks=1)

    assert (status, read) == (413, 0)
    assert count_sessions(engine) == 0


def test_a_streamed_body_over_the_limit_is_413_without_being_read_whole(settings: Settings, engine: Engine):
    status, read = asgi_request(create_app(settings, engine), [JSON_BODY], chunks=2048)  # 2 MiB, no Content-Length

    assert status == 413
    assert read <= MAX_BODY_BYTES // 1024 + 1
    assert count_sessions(engine) == 0


@pytest.mark.parametrize(
    "content_type", ["Application/JSON", "application/json ; charset=UTF-8", 'application/json; charset="utf-8"']
)
def test_media_types_are_case_insensitive_and_may_name_utf8(client: TestClient, engine: Engine, content_type: str):
    good = b'{"group_id": 1, "study_activity_id": 1}'

    created = client.post("/api/v1/study-sessions", content=good, headers={"content-type": content_type})
    refused = client.post(
        "/api/v1/study-sessions", content=b'{"group_id": "x"}', headers={"content-type": content_type}
    )

    assert created.status_code == 201
    assert pointers(assert_problem(refused, 400)) == {"/group_id", "/study_activity_id"}
    assert count_sessions(engine) == 1


@pytest.mark.parametrize("headers", [{}, {"content-type": "application/json; charset=utf-16"}])
def test_a_body_without_a_content_type_or_not_in_utf8_is_415(client: TestClient, engine: Engine, headers: dict):
    response = client.post(
        "/api/v1/study-sessions", content=b'{"group_id": 1, "study_activity_id": 1}', headers=headers
    )

    missing = "The body has no Content-Type; send it as application/json."
    assert assert_problem(response, 415)["detail"] == ("The body is utf-16; send it as UTF-8." if headers else missing)
    assert count_sessions(engine) == 0


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/x-www-form-urlencoded",
        b"multipart/form-data; boundary=x",
        b"multipart/form-data",  # a form without its boundary: Starlette's form reader would refuse it
        b"application/json",
    ],
)
def test_a_body_on_a_get_is_not_read(settings: Settings, engine: Engine, content_type: bytes):
    # 64 KiB that no GET takes, and that is not even valid as the form it claims to be. Its
    # Content-Type is dropped with it: nothing behind takes the GET for a form to read.
    headers = [(b"content-type", content_type), (b"content-length", str(64 * 1024).encode())]

    status, read = asgi_request(create_app(settings, engine), headers, chunks=64, method="GET", path="/api/v1/groups")

    assert (status, read) == (200, 0)


def test_a_content_length_that_is_not_a_number_is_400(client: TestClient, engine: Engine):
    response = client.post(
        "/api/v1/study-sessions",
        content=b'{"group_id": 1, "study_activity_id": 1}',
        headers={"content-type": "application/json", "content-length": "ten"},
    )

    problem = assert_problem(response, 400)
    assert (problem["title"], problem["detail"]) == ("Bad Request", "Content-Length is not a whole number.")
    assert count_sessions(engine) == 0


def test_a_duplicate_id_is_409_with_the_existing_location_and_changes_nothing(
    client: TestClient, engine: Engine, base: str
):
    first = post(client, base, {"id": 7, "group_id": 1, "study_activity_id": 1})

    again = post(client, base, {"id": 7, "group_id": 2, "study_activity_id": 2})

    problem = assert_problem(again, 409)
    assert "7" in problem["detail"]
    assert again.headers["location"] == f"{base}/study-sessions/7"
    assert client.get(f"{base}/study-sessions/7").json() == first.json()
    assert count_sessions(engine) == 1


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"group_id": 999, "study_activity_id": 1}, {("/group_id", "There is no group with id 999.")}),
        (
            {"group_id": 1, "study_activity_id": 999},
            {("/study_activity_id", "There is no study activity with id 999.")},
        ),
        (
            {"group_id": 999, "study_activity_id": 998},
            {
                ("/group_id", "There is no group with id 999."),
                ("/study_activity_id", "There is no study activity with id 998."),
            },
        ),
    ],
)
def test_an_unknown_group_or_activity_is_422_naming_it_and_stores_nothing(
    client: TestClient, engine: Engine, body: dict, named: set[tuple[str, str]]
):
    problem = assert_problem(post(client, "/api/v1", body), 422)

    assert problem["detail"] == "The request cannot be applied as it stands."
    assert {(e["pointer"], e["detail"]) for e in problem["errors"]} == named
    assert count_sessions(engine) == 0


@pytest.mark.parametrize(
    "created_at",
    [
        # Named: pytest-xdist's processes must collect the same test ids, and this value is not.
        pytest.param((datetime.now(UTC) + timedelta(hours=1)).isoformat(), id="an-hour-ahead"),
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00+01:00",
    ],
)
def test_a_created_at_in_the_future_or_out_of_range_is_422(client: TestClient, engine: Engine, created_at: str):
    problem = assert_problem(
        post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1, "created_at": created_at}), 422
    )

    assert pointers(problem) == {"/created_at"}
    assert count_sessions(engine) == 0


def test_a_created_at_with_lower_case_t_and_z_is_rfc3339_and_accepted(client: TestClient):
    response = post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1, "created_at": "2026-01-02t03:04:05z"})

    assert response.status_code == 201
    assert response.json()["created_at"] == "2026-01-02T03:04:05Z"


def test_a_created_at_a_little_ahead_of_the_clock_is_accepted(client: TestClient):
    soon = (datetime.now(UTC) + timedelta(seconds=60)).isoformat()

    assert post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1, "created_at": soon}).status_code == 201


# When the database fails --------------------------------------------------------------------


@pytest.mark.backends("sqlite")
def test_a_locked_database_is_503_with_retry_after_and_stores_nothing(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
):
    quick = Settings(**{**settings.__dict__, "db_timeout": 0.2})
    path = settings.database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with TestClient(create_app(quick), raise_server_exceptions=False) as client:
            response = post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1})
    finally:
        holder.execute("ROLLBACK")
        holder.close()

    problem = assert_problem(response, 503)
    assert int(response.headers["retry-after"]) >= 1
    assert "database" in problem["detail"]
    assert count_sessions(engine) == 0
    warned = [r for r in caplog.records if r.levelname == "WARNING" and r.getMessage() == "database unavailable"]
    assert len(warned) == 1 and "locked" in getattr(warned[0], "error", "")


def test_a_database_that_cannot_be_opened_is_503(tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    settings = Settings(database_url=f"sqlite:///{tmp_path}/a-file/study.db", db_timeout=0.2)

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for response in (
            post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1}),
            client.get("/api/v1/groups"),
        ):
            assert_problem(response, 503)
            assert response.headers["retry-after"]


def test_a_database_server_that_refuses_connections_is_503_saying_it_cannot_be_reached():
    # Nothing listens on port 1: the connection is refused at once. The client learns the kind of
    # outage, not the host.
    refused = Settings(database_url="postgresql+psycopg://postgres@127.0.0.1:1/test", db_timeout=0.5)

    with TestClient(create_app(refused), raise_server_exceptions=False) as client:
        for response in (
            post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1}),
            client.get("/api/v1/groups"),
        ):
            problem = assert_problem(response, 503)
            assert "(its server cannot be reached, or the connection to it was lost);" in problem["detail"]
            assert "127.0.0.1" not in response.text


@pytest.mark.backends("postgresql")
def test_a_postgresql_statement_past_db_timeout_is_503_saying_so_and_stores_nothing(settings: Settings, engine: Engine):
    quick = Settings(**{**settings.__dict__, "db_timeout": 0.5})
    with engine.connect() as holder, holder.begin():
        holder.execute(text("LOCK TABLE study_sessions IN ACCESS EXCLUSIVE MODE"))
        with TestClient(create_app(quick), raise_server_exceptions=False) as client:
            response = post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1})
        holder.rollback()

    problem = assert_problem(response, 503)
    assert "(it did not answer within DB_TIMEOUT);" in problem["detail"]
    assert count_sessions(engine) == 0


@pytest.mark.backends("postgresql")
def test_a_lost_postgresql_connection_costs_a_write_one_503_and_a_read_nothing(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
):
    # One thread, so one connection: each request meets the one the server just ended. A write is
    # not tried again (it may have been committed before the loss); a read is, on a new connection.
    # The lost connection is let go at once, without an error logged for it (SQLAlchemy's pool
    # logs one with its traceback where it finds a connection broken only when it resets it).
    one = Settings(**{**settings.__dict__, "db_pool_size": 1})

    def cut() -> None:
        with engine.connect() as conn:
            ended = conn.execute(
                text(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        assert ended >= 1

    with TestClient(create_app(one), raise_server_exceptions=False) as client:
        assert client.get("/api/v1/groups").status_code == 200
        cut()
        write = post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1})
        assert client.get("/api/v1/groups").status_code == 200
        cut()
        read = client.get("/api/v1/groups")

    problem = assert_problem(write, 503)
    assert "(its server cannot be reached, or the connection to it was lost);" in problem["detail"]
    assert count_sessions(engine) == 0
    assert read.status_code == 200
    assert [record.getMessage() for record in caplog.records if record.name.startswith("sqlalchemy")] == []


def test_a_database_without_its_tables_is_a_500_not_a_503(tmp_path: Path):
    # A deployment that skipped the migration is a bug to fix, not an outage to wait out.
    sqlite3.connect(tmp_path / "empty.db").execute("CREATE TABLE something_else (x)").connection.close()
    settings = Settings(database_url=f"sqlite:///{tmp_path}/empty.db", db_timeout=0.2)

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/groups")

    assert_problem(response, 500)
    assert "retry-after" not in response.headers


def test_an_unexpected_error_is_500_with_nothing_of_its_cause_and_is_logged_with_the_request_id(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    # A fault no real part can be made to show: a bug in the storage code.
    def broken(*_args, **_kwargs):
        raise RuntimeError("SELECT secret FROM /etc/passwd")

    monkeypatch.setattr("storage.study_sessions.create", broken)

    response = post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1}, **{"X-Request-ID": "trace-me-1"})

    problem = assert_problem(response, 500)
    assert "secret" not in response.text and "passwd" not in response.text and "Traceback" not in response.text
    assert "trace-me-1" in problem["detail"]
    logged = [r for r in caplog.records if r.levelname == "ERROR" and r.exc_info]
    assert logged and getattr(logged[0], "request_id", None) == "trace-me-1"
    assert logged[0].getMessage() == "unhandled error"


def test_an_answer_that_breaks_the_spec_is_a_500_that_hides_why_and_logs_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    # Connexion's response validation (on in tests) raises its own 500 ProblemException: a bug,
    # told to the client as any other 500, its cause only in the log.
    monkeypatch.setattr("handlers.shape.page", lambda _page: {"items": "not a list"})

    response = client.get("/api/v1/groups", headers={"X-Request-ID": "trace-me-2"})

    problem = assert_problem(response, 500)
    assert problem["detail"] == "The server failed to answer; the log has it under request id trace-me-2."
    logged = [r for r in caplog.records if r.levelname == "ERROR" and r.getMessage() == "unhandled error"]
    assert len(logged) == 1 and logged[0].exc_info


# Reading ------------------------------------------------------------------------------------


def test_the_complete_flow_post_then_get_location_then_list(client: TestClient, base: str):
    created = post(client, base, {"group_id": 3, "study_activity_id": 3})

    fetched = client.get(created.headers["location"])
    listed = client.get(f"{base}/study-sessions")

    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "application/json"
    assert fetched.json() == created.json()
    assert listed.status_code == 200
    assert listed.json() == {"items": [created.json()], "total": 1, "page": 1, "per_page": 10, "total_pages": 1}


@pytest.mark.parametrize("id", [1, 2, 2**31 - 1, 2**31, 2**32, 2**53, 2**53 + 1, MAX_ID - 1, MAX_ID])
def test_a_created_session_reads_back_by_location_and_id_and_in_the_list(client: TestClient, base: str, id: int):
    created = post(client, base, {"id": id, "group_id": 2, "study_activity_id": 3})

    by_location = client.get(created.headers["location"])
    by_id = client.get(f"{base}/study-sessions/{id}")
    listed = client.get(f"{base}/study-sessions").json()["items"]

    assert created.status_code == 201
    assert created.json()["id"] == id
    assert created.headers["location"] == f"{base}/study-sessions/{id}"
    assert (by_location.status_code, by_location.json()) == (200, created.json())
    assert (by_id.status_code, by_id.json()) == (200, created.json())
    assert listed == [created.json()]


def test_get_of_an_unknown_id_is_404_problem(client: TestClient, base: str):
    problem = assert_problem(client.get(f"{base}/study-sessions/12345"), 404)

    assert "12345" in problem["detail"]


@pytest.mark.parametrize("id", ["abc", "-5", "1.5", "%20"])
def test_get_with_an_id_that_is_not_a_positive_integer_is_400_naming_it(client: TestClient, base: str, id: str):
    problem = assert_problem(client.get(f"{base}/study-sessions/{id}"), 400)

    assert problem["errors"][0]["parameter"] == "id"


def test_the_list_is_newest_first_and_paged(client: TestClient):
    # Ids that disagree with the times, so that only ordering by created_at gives this order.
    for id, day in ((10, 3), (20, 1), (30, 2)):
        post(
            client,
            "/api/v1",
            {"id": id, "group_id": 1, "study_activity_id": 1, "created_at": f"2026-01-0{day}T00:00:00Z"},
        )

    first = client.get("/api/v1/study-sessions?per_page=2").json()
    second = client.get("/api/v1/study-sessions?per_page=2&page=2").json()
    past_the_end = client.get("/api/v1/study-sessions?per_page=2&page=3").json()

    assert [s["id"] for s in first["items"]] == [10, 30]
    assert [s["id"] for s in second["items"]] == [20]
    assert (first["total"], first["total_pages"], second["page"]) == (3, 2, 2)
    assert past_the_end["items"] == [] and past_the_end["total"] == 3


def test_pages_of_ten_come_newest_first_ties_by_id_none_repeated_or_missing(client: TestClient):
    shuffled = random.Random(14)
    tied = "2026-01-05T12:00:00Z"  # 25 sessions at one instant: only the ids order them
    bodies = [{"id": id, "group_id": 1, "study_activity_id": 1, "created_at": tied} for id in range(200, 225)]
    days = [1 + n % 9 for n in range(28)]  # 28 at shuffled times, some of them equal too
    shuffled.shuffle(days)
    bodies += [
        {"id": id, "group_id": 2, "study_activity_id": 2, "created_at": f"2026-01-0{day}T08:00:00Z"}
        for id, day in zip(range(300, 328), days, strict=True)
    ]
    shuffled.shuffle(bodies)  # stored in an order that is neither the ids' nor the times'
    created = [post(client, "/api/v1", body).json() for body in bodies]
    newest_first = [s["id"] for s in sorted(created, key=lambda s: (s["created_at"], s["id"]), reverse=True)]

    pages = [client.get(f"/api/v1/study-sessions?per_page=10&page={page}").json() for page in range(1, 7)]

    assert [len(page["items"]) for page in pages] == [10, 10, 10, 10, 10, 3]
    assert {(page["total"], page["total_pages"]) for page in pages} == {(53, 6)}
    assert [s["id"] for page in pages for s in page["items"]] == newest_first


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("per_page=0", {"per_page"}),
        ("per_page=101", {"per_page"}),
        ("page=0", {"page"}),
        ("page=x&per_page=%EF%BC%92", {"page", "per_page"}),
        ("page=1_0", {"page"}),
        ("page=%201", {"page"}),
        ("per_page=2&sort=id", {"sort"}),
    ],
)
def test_bad_paging_parameters_are_400_naming_each_one(client: TestClient, query: str, named: set[str]):
    problem = assert_problem(client.get(f"/api/v1/study-sessions?{query}"), 400)

    assert pointers(problem) == named


SEEDED_GROUPS = [
    {"id": 1, "name": "Core Verbs"},
    {"id": 2, "name": "Core Adjectives"},
    {"id": 3, "name": "Food and Drink"},
    {"id": 4, "name": "Travel Phrases"},
]
SEEDED_ACTIVITIES = [
    {
        "id": 1,
        "name": "Typing Tutor",
        "url": "http://localhost:8080/typing-tutor",
        "preview_url": "http://localhost:8080/assets/typing-tutor.png",
    },
    {
        "id": 2,
        "name": "Flashcards",
        "url": "http://localhost:8080/flashcards",
        "preview_url": "http://localhost:8080/assets/flashcards.png",
    },
    {
        "id": 3,
        "name": "Sentence Builder",
        "url": "http://localhost:8080/sentence-builder",
        "preview_url": "http://localhost:8080/assets/sentence-builder.png",
    },
]


def test_groups_and_study_activities_list_the_seeded_rows(client: TestClient, base: str):
    groups = client.get(f"{base}/groups").json()
    activities = client.get(f"{base}/study-activities").json()
    second = client.get(f"{base}/study-activities?per_page=2&page=2").json()

    assert groups == {"items": SEEDED_GROUPS, "total": 4, "page": 1, "per_page": 10, "total_pages": 1}
    assert activities == {"items": SEEDED_ACTIVITIES, "total": 3, "page": 1, "per_page": 10, "total_pages": 1}
    assert second == {"items": SEEDED_ACTIVITIES[2:], "total": 3, "page": 2, "per_page": 2, "total_pages": 2}


@pytest.mark.parametrize("group", SEEDED_GROUPS, ids=lambda g: g["name"])
@pytest.mark.parametrize("activity", SEEDED_ACTIVITIES, ids=lambda a: a["name"])
def test_every_listed_group_and_activity_can_start_a_session(client: TestClient, group: dict, activity: dict):
    response = post(client, "/api/v1", {"group_id": group["id"], "study_activity_id": activity["id"]})

    assert response.status_code == 201, response.text
    assert (response.json()["group_name"], response.json()["study_activity_name"]) == (group["name"], activity["name"])


# What every response carries ----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/v1/nothing-here", "/api/v1/study-sessions/", "/api/groups/", "/docs/"])
def test_an_unknown_path_is_404_problem_even_with_a_slash_more(client: TestClient, path: str):
    assert_problem(client.get(path, follow_redirects=False), 404)


def test_an_unsupported_method_is_405_with_allow(client: TestClient, base: str):
    response = client.delete(f"{base}/study-sessions")

    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, HEAD, POST"
    assert client.put(f"{base}/study-sessions/1").headers["allow"] == "GET, HEAD"
    assert assert_problem(client.delete(f"{base}/study-sessions/abc"), 405)["detail"] == (
        "DELETE is not allowed here; use GET, HEAD."
    )
    assert client.head(f"{base}/study-sessions").status_code == 200


@pytest.mark.parametrize("path", ["/docs", "/api/v1/openapi.json", "/api/v1/ui/"])
def test_an_unsupported_method_on_the_docs_is_405_with_allow(client: TestClient, path: str):
    response = client.post(path)

    problem = assert_problem(response, 405)
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD"}
    assert problem["detail"] == f"POST is not allowed here; use {response.headers['allow']}."


def test_the_request_id_is_echoed_or_made(client: TestClient):
    given = client.get("/api/v1/groups", headers={"X-Request-ID": "portal-abc.1"})
    made = client.get("/api/v1/groups")
    on_error = client.get("/api/v1/nothing-here", headers={"X-Request-ID": "portal-abc.2"})

    assert given.headers["x-request-id"] == "portal-abc.1"
    assert len(made.headers["x-request-id"]) == 32
    assert on_error.headers["x-request-id"] == "portal-abc.2"


def test_a_malformed_request_id_is_400_and_not_echoed(client: TestClient):
    response = client.get("/api/v1/groups", headers={"X-Request-ID": "x" * 200})

    assert assert_problem(response, 400)["errors"][0]["parameter"] == "X-Request-ID"
    assert response.headers["x-request-id"] != "x" * 200


ORIGIN = "http://localhost:3000"


def test_cors_headers_are_on_success_and_on_errors(client: TestClient):
    success = post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1}, Origin=ORIGIN)
    invalid = post(client, "/api/v1", {}, Origin=ORIGIN)
    not_found = client.get("/api/v1/study-sessions/999", headers={"Origin": ORIGIN})

    assert [r.status_code for r in (success, invalid, not_found)] == [201, 400, 404]
    for response in (success, invalid, not_found):
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "Location" in response.headers["access-control-expose-headers"]


def test_cors_preflight_is_answered_for_a_listed_origin_only(client: TestClient):
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}

    allowed = client.options("/api/v1/study-sessions", headers={"Origin": ORIGIN, **preflight})
    refused = client.options("/api/v1/study-sessions", headers={"Origin": "https://evil.example", **preflight})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in allowed.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in refused.headers
    assert "origin" in assert_problem(refused, 400)["detail"]
    assert "access-control-allow-credentials" not in allowed.headers


def test_cors_origins_come_from_the_settings(settings: Settings, engine: Engine):
    custom = Settings(**{**settings.__dict__, "cors_origins": ("https://portal.example",)})
    with TestClient(create_app(custom, engine)) as client:
        response = client.get("/api/v1/groups", headers={"Origin": "https://portal.example"})
        other = client.get("/api/v1/groups", headers={"Origin": ORIGIN})

    assert response.headers["access-control-allow-origin"] == "https://portal.example"
    assert "access-control-allow-origin" not in other.headers


def test_swagger_ui_and_the_spec_are_served(client: TestClient):
    spec = client.get("/api/v1/openapi.json")
    ui = client.get("/api/v1/ui/")

    assert spec.status_code == 200 and spec.json()["openapi"] == "3.0.3"
    assert ui.status_code == 200 and "swagger" in ui.text.lower()


def test_a_swagger_ui_file_the_server_cannot_read_is_a_problem_with_starlettes_status(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    # Starlette's StaticFiles (Swagger UI's files) answers a file it may not read with its own
    # HTTPException(401): not a 404 nor a 405 of routing, passed on as the problem it names.
    def denied(_self, path: str):
        raise PermissionError(path)

    monkeypatch.setattr(StaticFiles, "lookup_path", denied)

    problem = assert_problem(client.get("/api/v1/ui/swagger-ui.css"), 401)
    assert problem["detail"] == "Unauthorized"


def test_a_database_file_that_is_not_there_is_a_503_and_is_not_made_anew(tmp_path: Path):
    # Made anew, an empty file would stand in for a database only moved or not yet mounted.
    settings = Settings(database_url=f"sqlite:///{tmp_path}/missing.db", db_timeout=0.2)

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        responses = [client.get("/api/v1/groups"), post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1})]

    for response in responses:
        assert_problem(response, 503)
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.backends("sqlite")
def test_a_file_that_is_not_a_database_is_a_503(settings: Settings, engine: Engine):
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    engine.dispose()
    for leftover in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        leftover.unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)

    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        assert_problem(client.get("/api/v1/groups"), 503)


def test_on_a_database_west_of_utc_what_is_taken_reads_back_and_older_is_422(
    settings: Settings, engine: Engine, backend: str
):
    if backend == "postgresql":  # this test's own database only
        name = engine.url.database
        with admin_engine().connect() as conn:
            conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'"))
    oldest = {"group_id": 1, "study_activity_id": 1, "created_at": "0001-01-02T00:00:00Z"}
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        too_old = post(client, "/api/v1", {**oldest, "created_at": "0001-01-01T23:59:59Z"})
        taken = post(client, "/api/v1", oldest)
        one = client.get(taken.headers["location"])
        page = client.get("/api/v1/study-sessions?per_page=100")

    assert_problem(too_old, 422)
    assert taken.status_code == 201
    assert one.status_code == page.status_code == 200
    assert one.json()["created_at"] == "0001-01-02T00:00:00Z"
    assert page.json()["items"][-1]["created_at"] == "0001-01-02T00:00:00Z"
    if backend == "postgresql":  # the service's own connections are pinned to UTC
        fresh = make_engine(settings.database_url)
        with fresh.connect() as conn:
            assert conn.execute(text("SHOW timezone")).scalar_one() == "UTC"
        fresh.dispose()


def test_a_leap_second_is_a_422_not_a_400(client: TestClient, engine: Engine):
    response = post(client, "/api/v1", {"group_id": 1, "study_activity_id": 1, "created_at": "2016-12-31T23:59:60Z"})

    problem = assert_problem(response, 422)
    assert pointers(problem) == {"/created_at"}
    assert count_sessions(engine) == 0


def test_a_refused_cors_preflight_is_a_bad_request_problem_that_keeps_the_cors_headers(client: TestClient):
    # Caches must see Vary (the same URL is allowed for another origin), and the browser the methods.
    refused = client.options(
        "/api/v1/study-sessions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert assert_problem(refused, 400)["title"] == "Bad Request"
    assert "Origin" in refused.headers["vary"]
    assert "POST" in refused.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in refused.headers


def test_a_duplicate_id_with_an_unknown_group_is_still_the_409_with_the_existing_location(
    client: TestClient, engine: Engine
):
    first = post(client, "/api/v1", {"id": 7, "group_id": 1, "study_activity_id": 1})

    again = post(client, "/api/v1", {"id": 7, "group_id": 999, "study_activity_id": 1})

    assert first.status_code == 201
    assert assert_problem(again, 409)["detail"] == "Study session 7 already exists."
    assert again.headers["location"] == "/api/v1/study-sessions/7"
    assert count_sessions(engine) == 1
