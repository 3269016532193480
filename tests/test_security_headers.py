"""What every answer carries so that no browser or cache does more with it than meant."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from tests.servers import GUNICORN, service


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/api/v1/groups", 200),
        ("POST", "/api/v1/study-sessions", 201),
        ("POST", "/api/v1/study-sessions/", 404),
        ("GET", "/api/v1/study-sessions/abc", 400),
        ("DELETE", "/api/v1/groups", 405),
        ("GET", "/nowhere", 404),
        ("GET", "/api/v1/metrics", 200),
        ("GET", "/api/v1/openapi.json", 200),
    ],
)
def test_every_answer_says_nosniff_and_no_store(client: TestClient, method: str, path: str, status: int):
    response = client.request(method, path, json={"group_id": 1, "study_activity_id": 1} if method == "POST" else None)

    assert response.status_code == status
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


def test_the_docs_pages_may_be_cached_but_not_sniffed(client: TestClient):
    ui = client.get("/api/v1/ui/")

    assert ui.status_code == 200
    assert ui.headers["x-content-type-options"] == "nosniff"
    assert "no-store" not in ui.headers.get("cache-control", "")


def test_a_refused_cors_preflight_carries_them_too(client: TestClient):
    refused = client.options(
        "/api/v1/study-sessions",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert refused.status_code == 400
    assert refused.headers["x-content-type-options"] == "nosniff"


@pytest.mark.live
@pytest.mark.backends("sqlite")
@pytest.mark.parametrize("command", ["dev run", "gunicorn"])
def test_no_server_banner_names_the_server_or_its_version(tmp_path: Path, database_url: str, command: str):
    with service(tmp_path, database_url, *(() if command == "dev run" else (GUNICORN,))) as (url, _):
        response = httpx.get(f"{url}/api/v1/healthz")

    assert response.status_code == 200
    assert "server" not in response.headers
