"""The service's own settings and logging, seen from outside."""

from __future__ import annotations

import io
import json

from starlette.testclient import TestClient

from edge.settings import DEFAULT_CORS_ORIGINS, Settings


def test_settings_come_from_the_environment():
    settings = Settings.from_env(
        {
            "DATABASE_URL": "sqlite:////tmp/x.db",
            "HOST": "0.0.0.0",
            "PORT": "8123",
            "CORS_ORIGINS": "https://a.example, https://b.example",
            "LOG_LEVEL": "debug",
        }
    )

    assert settings.database_url == "sqlite:////tmp/x.db"
    assert (settings.host, settings.port) == ("0.0.0.0", 8123)
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.log_level == "DEBUG"


def test_the_defaults_serve_sqlite_under_var_on_localhost_5000():
    settings = Settings.from_env({})

    assert settings.database_url == "sqlite:///var/study_sessions.db"
    assert (settings.host, settings.port) == ("127.0.0.1", 5000)
    assert "*" not in settings.cors_origins
    assert settings.cors_origins == tuple(DEFAULT_CORS_ORIGINS.split(","))


def test_each_request_logs_one_json_line_and_each_creation_its_id(client: TestClient, json_logs: io.StringIO):
    client.post(
        "/api/v1/study-sessions",
        json={"id": 77, "group_id": 1, "study_activity_id": 1},
        headers={"X-Request-ID": "log-1"},
    )
    client.get("/api/v1/study-sessions/999", headers={"X-Request-ID": "log-2"})

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    requests = [line for line in lines if line["message"] == "request"]
    created = [line for line in lines if line["message"] == "study session created"]

    assert [(r["request_id"], r["method"], r["path"], r["status"]) for r in requests] == [
        ("log-1", "POST", "/api/v1/study-sessions", 201),
        ("log-2", "GET", "/api/v1/study-sessions/999", 404),
    ]
    assert all(r["duration_ms"] >= 0 for r in requests)
    assert len(created) == 1
    assert (created[0]["study_session_id"], created[0]["request_id"]) == (77, "log-1")
