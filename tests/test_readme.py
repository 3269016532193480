"""The README's examples, run as a reader would run them: each curl command of "Using it" against
the service that `./scripts/dev run` starts, its answer as the README shows it; the API-key
example; and the generated client's snippet, on a 201 and on a problem without `errors`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import DEV_RUN, ROOT, service

pytestmark = [pytest.mark.live, pytest.mark.backends("sqlite")]

README = (ROOT / "README.md").read_text()
README_URL = "localhost:5000"


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", README, flags=re.MULTILINE | re.DOTALL)


def console_steps(block: str) -> list[tuple[str, str]]:
    """Each `$ command` of a console block (continuation lines joined) with the output shown."""
    steps = []
    for chunk in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
        lines = chunk.splitlines()
        command = [lines.pop(0)]
        while command[-1].endswith("\\"):
            command.append(lines.pop(0))
        steps.append(("\n".join(command), "\n".join(lines).strip()))
    return steps


def pattern(shown: str) -> str:
    """A regex for what the README shows: `...` stands for any text, a time the service stamps
    for any time, and RateLimit's seconds to the reset for any number."""
    parts = []
    for piece in re.split(r"(\.\.\.|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z|;t=\d+)", shown):
        if piece == "...":
            parts.append(".*?")
        elif re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z", piece):
            parts.append(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z")
        elif piece.startswith(";t="):
            parts.append(r";t=\d+")
        else:
            parts.append(re.escape(piece))
    return "".join(parts)


def assert_answer_as_shown(command: str, got: str, shown: str) -> None:
    got = got.replace("\r\n", "\n").strip()
    if shown.startswith("HTTP/"):  # curl -i: the status line and the headers shown, then the body
        shown_head, shown_body = shown.split("\n\n", 1)
        head, body = got.split("\n\n", 1)
        status, *headers = shown_head.splitlines()
        assert head.splitlines()[0] == status, command
        for header in headers:
            assert any(re.fullmatch(pattern(header), line) for line in head.splitlines()[1:]), (command, header, head)
        got, shown = body, shown_body
    assert re.fullmatch(pattern(shown), got, flags=re.DOTALL), f"{command}\n--- README:\n{shown}\n--- got:\n{got}"


def curl(command: str, url: str, **env: str) -> str:
    done = subprocess.run(
        ["bash", "-c", command.replace(README_URL, url)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env={**os.environ, **env},
    )
    return done.stdout


def test_every_curl_example_answers_as_the_readme_shows(tmp_path: Path):
    (block,) = blocks("console")
    steps = console_steps(block)
    assert len(steps) >= 10
    limits = {"RATE_LIMIT_WRITE": "120/minute", "RATE_LIMIT_READ": "1200/minute", "API_KEYS": ""}

    with service(tmp_path, f"sqlite:///{tmp_path}/study.db", DEV_RUN, **limits) as (url, _):
        for command, shown in steps:
            assert_answer_as_shown(command, curl(command, url.removeprefix("http://")), shown)


def test_the_api_key_example_creates_with_its_key_and_idempotency_key(tmp_path: Path):
    (block,) = [b for b in blocks("sh") if "API_KEYS=$digest" in b]
    lines = block.splitlines()
    start_at = next(i for i, line in enumerate(lines) if line.startswith("API_KEYS=$digest ./scripts/dev run"))
    setup, request = "\n".join(lines[:start_at]), "\n".join(lines[start_at + 1 :])
    key, digest = curl(f'{setup}\necho "$key $digest"', "").split()

    with service(tmp_path, f"sqlite:///{tmp_path}/study.db", DEV_RUN, API_KEYS=digest) as (url, _):
        first = curl(f"key={key}\n{request}", url.removeprefix("http://"))
        again = curl(f"key={key}\n{request}", url.removeprefix("http://"))

    assert first.startswith("HTTP/1.1 201 Created"), first
    assert again.split("\n\n")[1] == first.split("\n\n")[1]  # the retry gets the first answer


ANSWERS = [("", ""), ("0" * 64, "401 This operation needs a valid API key in X-API-Key. []\n")]


@pytest.mark.xdist_group("client_packages")
@pytest.mark.parametrize(("api_keys", "printed"), ANSWERS, ids=["201", "problem"])
def test_the_client_snippet_runs_on_a_201_and_on_a_problem_without_errors(
    tmp_path: Path, client_packages: Path, api_keys: str, printed: str
):
    (snippet,) = [b for b in blocks("python") if "study_sessions_client" in b]
    (wheel,) = client_packages.glob("study_sessions_client-*.whl")  # importable as it is: pure Python

    with service(tmp_path, f"sqlite:///{tmp_path}/study.db", DEV_RUN, API_KEYS=api_keys) as (url, _):
        done = subprocess.run(
            [sys.executable, "-c", snippet.replace("http://127.0.0.1:5000", url)],
            env={**os.environ, "PYTHONPATH": str(wheel)},
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert done.returncode == 0, done.stderr
    assert done.stdout == printed  # nothing on a 201
