"""The service's own settings and logging, seen from outside."""

from __future__ import annotations

import io
import json
import logging
import time
import warnings

from starlette.testclient import TestClient

from edge.logs import SERVER_LOGGERS, configure_logging
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
    started = time.perf_counter()
    client.post(
        "/api/v1/study-sessions",
        json={"id": 77, "group_id": 1, "study_activity_id": 1},
        headers={"X-Request-ID": "log-1"},
    )
    client.get("/api/v1/study-sessions/999", headers={"X-Request-ID": "log-2"})
    both_ms = (time.perf_counter() - started) * 1000

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    requests = [line for line in lines if line["message"] == "request"]
    created = [line for line in lines if line["message"] == "study session created"]

    assert [(r["request_id"], r["method"], r["path"], r["status"]) for r in requests] == [
        ("log-1", "POST", "/api/v1/study-sessions", 201),
        ("log-2", "GET", "/api/v1/study-sessions/999", 404),
    ]
    durations = [r["duration_ms"] for r in requests]
    assert all(isinstance(d, float) and round(d, 3) == d for d in durations), durations  # milliseconds to the µs
    assert 0 < sum(durations) <= both_ms, (durations, both_ms)
    assert len(created) == 1
    assert (created[0]["study_session_id"], created[0]["request_id"]) == (77, "log-1")


def test_the_servers_loggers_and_pythons_warnings_write_json_lines_through_the_one_handler(json_logs: io.StringIO):
    plain = io.StringIO()  # the plain-text handlers uvicorn's and gunicorn's log configs bring
    for name in SERVER_LOGGERS:
        logging.getLogger(name).addHandler(logging.StreamHandler(plain))
        logging.getLogger(name).propagate = False
    logging.captureWarnings(False)  # undone for this test by pytest's own capture of warnings
    configure_logging("INFO", json_logs)

    for name in SERVER_LOGGERS:
        colour = "Started server process [\x1b[36m%d\x1b[0m]"  # uvicorn's copy of its messages for a terminal
        logging.getLogger(name).info("Started server process [%d]", 7, extra={"color_message": colour})
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("an old way", DeprecationWarning, stacklevel=1)
    logging.getLogger("connexion.middleware.exceptions").warning("a 404 that connexion also logs")
    logging.getLogger("connexion.middleware.exceptions").error("connexion failed")
    logging.getLogger("alembic.runtime.plugins").info("setting up autogenerate plugin")
    logging.getLogger("alembic.runtime.plugins").warning("a plugin failed")

    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert plain.getvalue() == ""
    assert [(line["name"], line["message"]) for line in lines[:4]] == [
        (name, "Started server process [7]") for name in SERVER_LOGGERS if name != "uvicorn.access"
    ]  # the request log says what uvicorn's access log would
    assert all(set(line) == {"asctime", "levelname", "name", "message", "request_id"} for line in lines[:4])
    assert [(line["name"], line["levelname"]) for line in lines[4:]] == [
        ("py.warnings", "WARNING"),
        ("connexion.middleware.exceptions", "ERROR"),
        ("alembic.runtime.plugins", "WARNING"),
    ]
    assert "DeprecationWarning: an old way" in lines[4]["message"]


def test_words_are_answered_as_utf8_text_not_as_unicode_escapes(client: TestClient):
    response = client.get("/api/v1/groups/1/words?per_page=1")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert "食べる".encode() in response.content
    assert b"\\u" not in response.content
