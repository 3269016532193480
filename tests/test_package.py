"""The package as a user installs it: the wheel `pip wheel .` builds, installed into a fresh
virtual environment, runs from any folder as the `study-sessions` command, and starts quietly."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.servers import BIN, ROOT, free_port, project_copy, wait_until_up

pytestmark = [pytest.mark.live, pytest.mark.backends("sqlite")]


def run(*command: str | Path, **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True, check=False, **kwargs)  # type: ignore[call-overload]
    assert done.returncode == 0, f"{command}: {done.stdout[-2000:]}{done.stderr[-3000:]}"
    return done


def test_the_wheel_installed_in_a_fresh_venv_migrates_and_serves_from_another_folder(tmp_path: Path):
    wheels, venv, elsewhere = tmp_path / "wheels", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    quiet = ("-q", "--disable-pip-version-check")
    # From a copy: built in the project, its build/ (build/lib above all) would go on shipping
    # whatever was there before, a module since deleted included.
    project = project_copy(tmp_path)
    if (ROOT / "build" / "docs").exists():  # the docs site, built already, is one of its parts
        shutil.copytree(ROOT / "build" / "docs", project / "build" / "docs")
    run(BIN / "pip", "wheel", *quiet, "--no-deps", "--wheel-dir", wheels, ".", cwd=project)
    (wheel,) = wheels.glob("study_sessions-*.whl")
    run(sys.executable, "-m", "venv", venv)
    run(venv / "bin" / "pip", "install", *quiet, "-c", ROOT / "constraints.txt", wheel, cwd=elsewhere)
    command = venv / "bin" / "study-sessions"
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{elsewhere}/study.db",
        "PORT": str(port),
        "LOG_LEVEL": "INFO",
        "PYTHONPATH": "",
    }

    usage = run(command, "--help", cwd=elsewhere, env=env).stdout
    migrated = run(command, "migrate", cwd=elsewhere, env=env)
    server = subprocess.Popen([command, "serve"], cwd=elsewhere, env=env, stderr=subprocess.PIPE, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, server, path="/api/v1/healthz")
        health = httpx.get(f"{url}/api/v1/healthz")
        created = httpx.post(f"{url}/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 2})
        docs = httpx.get(f"{url}/docs")
        spec = httpx.get(f"{url}/api/v1/openapi.json")
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)

    assert "serve" in usage and "migrate" in usage
    assert any(json.loads(line)["message"].startswith("Running upgrade") for line in migrated.stderr.splitlines())
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert created.status_code == 201 and created.json()["study_activity_name"] == "Flashcards"
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "Study Sessions API"
    if (ROOT / "build" / "docs" / "index.html").exists():  # the docs site goes in where it was built
        assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    # No warning (such as Starlette's about httpx2) or other plain text: every line is the JSON log.
    records = [json.loads(line) for line in stderr.splitlines()]
    assert not [r for r in records if r["name"] == "py.warnings" or r["levelname"] in ("ERROR", "CRITICAL")]
    assert {p.name for p in elsewhere.iterdir()} <= {"study.db", "study.db-wal", "study.db-shm"}
