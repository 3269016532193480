"""What an operator reads on stderr from start to stop, under each of the three ways of serving
(`python app.py`, `uvicorn app:app`, gunicorn): JSON lines only; a bad setting is one line naming
the variable, its value and what it takes; a start that cannot reach its database is a short
error that leaves nothing behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from edge.settings import BadSettings, Settings
from tests.servers import BIN, GUNICORN, ROOT, free_port, wait_until_up

pytestmark = [pytest.mark.live, pytest.mark.backends("sqlite")]

WAYS = {
    "python app.py": (sys.executable, "app.py"),
    "uvicorn app:app": (BIN / "uvicorn", "app:app", "--host", "127.0.0.1", "--port", "{port}"),
    "gunicorn": GUNICORN,
}


def environment(tmp_path: Path, **env: str) -> dict[str, str]:
    return {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path}/study.db",
        "LOG_LEVEL": "INFO",
        "WORKERS": "1",
        "TMPDIR": str(tmp_path),  # where gunicorn's master makes its metrics folder
        **env,
    }


def json_lines(stderr: str) -> list[dict[str, Any]]:
    """Every line of `stderr` as JSON; a line that is not fails the test, quoted."""
    records = []
    for line in stderr.splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            pytest.fail(f"a line on stderr is not JSON: {line!r}\n--- all of stderr:\n{stderr[-4000:]}")
    return records


@pytest.mark.parametrize("way", WAYS)
def test_every_line_on_stderr_from_start_to_stop_is_json(tmp_path: Path, way: str):
    port = free_port()
    command = [str(part).format(port=port) for part in WAYS[way]]
    env = environment(tmp_path, PORT=str(port))
    if way == "uvicorn app:app":  # it does not migrate (README): the admin step first
        subprocess.run([sys.executable, "-m", "edge.cli", "migrate"], cwd=ROOT, env=env, check=True, timeout=60)
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until_up(f"http://127.0.0.1:{port}", server, path="/readyz")
        httpx.post(f"http://127.0.0.1:{port}/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 1})
        httpx.post(f"http://127.0.0.1:{port}/api/v1/study-sessions", content=b"{", headers={"content-type": "text/x"})
    finally:
        server.send_signal(signal.SIGTERM)
        stdout, stderr = server.communicate(timeout=60)

    records = json_lines(stderr)
    assert stdout == ""
    names = {r["name"] for r in records}
    assert "study_sessions" in names  # the service's own lines
    assert names & {"uvicorn.error", "gunicorn.error"}  # and the server's, start to stop
    assert any(r["message"].startswith("Finished server process") for r in records)
    assert [r["status"] for r in records if r["message"] == "request" and r["path"] != "/readyz"] == [201, 415]


BAD = [
    ("PORT", "abc", "a whole number from 1 to 65535"),
    ("RATE_LIMIT_WRITE", "lots", "a rate in the limits notation"),
    ("LOG_LEVEL", "loud", "one of DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("DB_TIMEOUT", "soon", "a number of seconds"),
    ("DB_POOL_SIZE", "0", "a whole number from 1"),
    ("WORKERS", "two", "a whole number from 1"),
    ("WORKER_TIMEOUT", "-1", "a number of seconds"),
    ("GRACEFUL_TIMEOUT", "x", "a number of seconds"),
    ("DATABASE_URL", "mysql://db/study", "an SQLAlchemy URL of SQLite or PostgreSQL"),
    ("DATABASE_URL", "postgresql+psycopg2://db/study", "an SQLAlchemy URL of SQLite or PostgreSQL"),
    ("HOST", " ", "a value that is not empty"),
    ("CORS_ORIGINS", "localhost:3000", "comma-separated origins"),
    ("VALIDATE_RESPONSES", "maybe", "1 (or true, yes, on) or 0"),
    ("READS_NEED_API_KEY", "sure", "1 (or true, yes, on) or 0"),
    ("RATE_LIMIT_READ", "10/fortnight", "a rate in the limits notation"),
    ("REDIS_URL", "http://cache:6379", "a Redis URL"),
    ("REDIS_URL", "unix:///run/redis.sock", "a Redis URL"),
    ("MAX_CONNECTIONS", "many", "a whole number from 1"),
    ("FORWARDED_ALLOW_IPS", "the-proxy", "comma-separated IP addresses or networks"),
]


@pytest.mark.parametrize(("name", "value", "takes"), BAD, ids=[f"{b[0]}={b[1]}" for b in BAD])
def test_each_bad_setting_is_named_with_its_value_and_what_it_takes(name: str, value: str, takes: str):
    with pytest.raises(BadSettings) as raised:
        Settings.from_env({name: value})

    (problem,) = raised.value.problems  # one line, for this variable alone
    assert problem.startswith(f"{name} is {value!r}: it takes {takes}") and problem.endswith(".")
    assert "\n" not in problem


def test_a_bad_api_key_setting_is_named_without_showing_its_value():
    with pytest.raises(BadSettings) as raised:
        Settings.from_env({"API_KEYS": "my-secret-key"})

    (problem,) = raised.value.problems
    assert problem.startswith("API_KEYS is (not shown") and "SHA-256 hex digests" in problem
    assert "my-secret-key" not in problem


def test_a_database_url_with_a_password_is_shown_without_it():
    with pytest.raises(BadSettings) as raised:
        Settings.from_env({"DATABASE_URL": "mysql://study:hunter2@db/study"})

    assert raised.value.problems[0].startswith("DATABASE_URL is 'mysql://study:***@db/study': it takes")


@pytest.mark.parametrize("way", WAYS)
def test_bad_settings_stop_each_way_of_serving_with_one_json_line_each_and_no_traceback(tmp_path: Path, way: str):
    port = free_port()
    command = [str(part).format(port=port) for part in WAYS[way]]
    env = environment(tmp_path, PORT="abc", RATE_LIMIT_WRITE="lots")
    if way == "uvicorn app:app":  # uvicorn takes its port from its own option; the service still reads PORT
        env["PORT"] = "abc"

    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    messages = [r["message"] for r in json_lines(done.stderr)]
    assert messages == [
        "PORT is 'abc': it takes a whole number from 1 to 65535.",
        "RATE_LIMIT_WRITE is 'lots': it takes a rate in the limits notation (30/minute, 5/second, 1000/hour) or off.",
    ]


@pytest.mark.parametrize("way", ["python app.py", "gunicorn"])
def test_a_start_that_cannot_reach_its_database_is_a_short_error_and_leaves_nothing_behind(tmp_path: Path, way: str):
    (tmp_path / "a-file").write_text("")
    env = environment(tmp_path, PORT=str(free_port()), DATABASE_URL=f"sqlite:///{tmp_path}/a-file/study.db")

    done = subprocess.run(WAYS[way], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)

    assert done.returncode != 0
    records = json_lines(done.stderr)
    assert len(records) <= 3, done.stderr
    (failure,) = [r for r in records if r["levelname"] == "CRITICAL"]
    assert failure["message"] == "cannot start: the database cannot be migrated"
    assert failure["error"].endswith(": unable to open database file")
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]  # no study-sessions-metrics-* folder
