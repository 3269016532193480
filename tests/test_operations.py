"""/healthz, /readyz and /metrics, in process, on both backends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from starlette.testclient import TestClient
from starlette.types import Message

from app import create_app
from edge import metrics
from edge.settings import Settings
from storage import migrate
from tests.conftest import asgi_scope


def test_healthz_answers_without_the_database(tmp_path: Path, base: str):
    (tmp_path / "a-file").write_text("")
    unreachable = Settings(database_url=f"sqlite:///{tmp_path}/a-file/study.db", validate_responses=True)

    with TestClient(create_app(unreachable), raise_server_exceptions=False) as client:
        response = client.get(f"{base}/healthz")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_the_database_answers_at_the_current_revision(client: TestClient, base: str):
    response = client.get(f"{base}/readyz")

    assert (response.status_code, response.json()) == (200, {"status": "ready", "database_revision": migrate.HEAD})


def test_readyz_is_a_503_problem_when_the_migrations_have_not_run(tmp_path: Path):
    sqlite3.connect(tmp_path / "new.db").execute("CREATE TABLE unrelated (x)").connection.close()
    unmigrated = Settings(database_url=f"sqlite:///{tmp_path}/new.db", validate_responses=True)

    with TestClient(create_app(unmigrated), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"]
    assert f"revision None; this code needs {migrate.HEAD}" in response.json()["detail"]


def test_readyz_is_a_503_problem_when_the_schema_is_behind(client: TestClient, engine: Engine):
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))

    response = client.get("/api/v1/readyz")

    assert response.status_code == 503
    assert "revision 0001" in response.json()["detail"]


def test_readyz_is_a_503_problem_when_the_schema_is_ahead_of_the_code(client: TestClient, engine: Engine):
    with engine.begin() as conn:  # a newer release migrated the database, then this one was rolled back to
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    response = client.get("/api/v1/readyz")

    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert f"revision 9999; this code needs {migrate.HEAD}" in response.json()["detail"]


def test_readyz_is_a_503_problem_when_the_database_cannot_be_reached(tmp_path: Path):
    (tmp_path / "a-file").write_text("")
    unreachable = Settings(database_url=f"sqlite:///{tmp_path}/a-file/study.db", db_timeout=0.2)

    with TestClient(create_app(unreachable), raise_server_exceptions=False) as client:
        response = client.get("/api/v1/readyz")

    assert response.status_code == 503
    assert response.headers["retry-after"]
    # The cause's kind, which the log states with the path; the client gets no path.
    assert "its file cannot be opened" in response.json()["detail"]
    assert str(tmp_path) not in response.text


def metric(text: str, name: str, absent: float | None = None, /, **labels: str) -> float:
    """The value of the sample `name{labels}` in Prometheus's text format; where there is none,
    `absent` if given, else the test fails saying so."""
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(r"(\w+)(?:\{(.*)\})? (\S+)", line)
        if match and match[1] == name and ",".join(sorted((match[2] or "").split(","))) == wanted:
            return float(match[3])
    if absent is None:
        pytest.fail(f"no sample {name}{{{wanted}}} in the metrics:\n{text}")
    return absent


def test_metrics_count_requests_by_operation_and_status_and_time_them(client: TestClient):
    before = client.get("/api/v1/metrics").text
    client.post("/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 1})
    client.post("/api/v1/study-sessions", json={"group_id": 999, "study_activity_id": 1})
    client.get("/api/study-sessions/1")
    client.get("/api/v1/study-sessions/424242")
    client.get("/api/v1/nowhere")

    response = client.get("/api/v1/metrics")
    after = response.text

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")

    def more(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, 0.0, **labels)  # new series start at 0

    assert more("http_requests_total", operation="create_study_session", status="201") == 1
    assert more("http_requests_total", operation="create_study_session", status="422") == 1
    assert more("http_requests_total", operation="get_study_session", status="200") == 1
    assert more("http_requests_total", operation="get_study_session", status="404") == 1
    assert more("http_requests_total", operation="none", status="404") == 1
    assert more("http_request_duration_seconds_count", operation="create_study_session") == 2
    assert more("http_request_duration_seconds_bucket", operation="get_study_session", le="+Inf") == 2
    assert more("http_request_duration_seconds_bucket", operation="get_study_session", le="10.0") == 2


def test_metrics_count_a_request_refused_before_routing_under_no_operation(client: TestClient):
    before = client.get("/api/v1/metrics").text

    refused = client.get("/api/v1/study-sessions?" + "a" * 3000)

    assert refused.status_code == 414
    after = client.get("/api/v1/metrics").text
    counted = metric(after, "http_requests_total", operation="none", status="414")
    assert counted == metric(before, "http_requests_total", 0.0, operation="none", status="414") + 1


def test_metrics_show_the_database_connections_against_their_limit(client: TestClient, settings: Settings):
    client.get("/api/v1/groups")

    text = client.get("/api/v1/metrics").text

    assert metric(text, "db_connections_max") == settings.db_pool_size
    assert 1 <= metric(text, "db_connections", state="open") <= settings.db_pool_size
    assert metric(text, "db_connections", state="in_use") == 0


def test_a_request_cancelled_before_its_answer_is_logged_and_counted_as_failed(
    settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
):
    sent: list[Message] = []
    waiting_for_the_body = asyncio.Event()

    async def receive() -> Message:
        waiting_for_the_body.set()
        await asyncio.Event().wait()  # the body never comes: the server cancels the request meanwhile
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    scope = asgi_scope(
        "POST", "/api/v1/study-sessions", [(b"content-type", b"application/json"), (b"content-length", b"100")]
    )
    app = create_app(settings, engine)

    async def cancelled_while_reading() -> None:
        request = asyncio.create_task(app(scope, receive, send))
        await waiting_for_the_body.wait()
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await request

    failed_before = metric(
        metrics.exposition()[0].decode(), "http_requests_total", 0.0, operation="create_study_session", status="500"
    )
    with caplog.at_level(logging.INFO):
        asyncio.run(cancelled_while_reading())

    assert sent == []
    assert [r.__dict__["status"] for r in caplog.records if r.getMessage() == "request"] == [500]
    failed = metric(
        metrics.exposition()[0].decode(), "http_requests_total", operation="create_study_session", status="500"
    )
    assert failed == failed_before + 1


@pytest.mark.parametrize("path", ["/api/v1/healthz", "/api/v1/readyz", "/api/v1/metrics"])
def test_the_operations_endpoints_take_get_only(client: TestClient, path: str):
    response = client.post(path)

    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


def test_the_platform_endpoints_answer_at_the_root_as_under_the_base_path_and_are_never_rate_limited(
    settings: Settings, engine: Engine
):
    one_read_a_minute = Settings(**{**settings.__dict__, "rate_limit_read": "1/minute"})

    with TestClient(create_app(one_read_a_minute, engine), raise_server_exceptions=False) as client:
        at_root = {path: [client.get(path) for _ in range(3)] for path in ("/healthz", "/readyz", "/metrics")}
        under_base = client.get("/api/v1/readyz")
        not_allowed = client.post("/healthz")

    for path, answers in at_root.items():
        assert [a.status_code for a in answers] == [200, 200, 200], path
        assert all("ratelimit" not in a.headers for a in answers), path
    assert at_root["/healthz"][0].json() == {"status": "ok"}
    assert at_root["/readyz"][0].json() == under_base.json() == {"status": "ready", "database_revision": migrate.HEAD}
    assert metric(at_root["/metrics"][2].text, "http_requests_total", operation="get_readiness", status="200") >= 3
    assert not_allowed.status_code == 405
    assert set(not_allowed.headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_the_root_platform_endpoints_are_documented_once_by_a_mark_on_their_operations(client: TestClient):
    served = client.get("/api/v1/openapi.json").json()

    marked = sorted(path for path, item in served["paths"].items() if item["get"].get("x-also-served-at-root"))
    assert marked == ["/healthz", "/metrics", "/readyz"]
    assert client.get("/healthz/").status_code == 404
    assert client.get("/groups").status_code == 404  # only the marked paths are at the root
