"""Against the service started the way the README starts it (./scripts/dev run, ./scripts/dev fuzz),
on a free port: the Schemathesis CLI on both base paths, and a Python client generated from the spec."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app import BASE_PATHS
from edge.security import digest
from tests.conftest import TEST_API_KEY
from tests.servers import BIN, DEV_RUN, ROOT, service

REPORTS = ROOT / "build" / "reports"
PYTHON_CLIENT = ROOT / "build" / "clients" / "python"

pytestmark = pytest.mark.live


def test_dev_fuzz_runs_the_schemathesis_cli_on_both_base_paths_and_finds_no_failure(database_url: str):
    """`./scripts/dev fuzz` (README): the service with API keys, as production runs, and without
    rate limits; every default check and phase and ours, with the seed of schemathesis.toml."""
    result = subprocess.run(
        [ROOT / "scripts" / "dev", "fuzz"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert result.stdout.count("Seed: 20261127") == len(BASE_PATHS)
    for base in BASE_PATHS:
        report = (REPORTS / f"fuzz{base.replace('/', '-')}.xml").read_text()
        assert 'failures="0"' in report and 'errors="0"' in report


def test_a_plain_schemathesis_run_in_the_project_folder_catches_a_created_session_that_cannot_be_read(
    tmp_path: Path, database_url: str
):
    lossy = (BIN / "python", "-m", "tests.planted.lossy_service")
    with service(tmp_path, database_url, lossy) as (url, _):  # open: no API_KEYS, as on a laptop
        result = subprocess.run(
            [BIN / "schemathesis", "run", f"{url}/api/v1/openapi.json"],
            cwd=ROOT,  # where schemathesis.toml is: its seed, checks and hooks
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )

    assert result.returncode != 0
    assert "Custom check failed: `created_sessions_are_readable`" in result.stdout, result.stdout[-8000:]


@pytest.fixture(scope="module")
def client_package() -> Iterator[Any]:
    """The Python client that `./scripts/dev client` generates from openapi/, imported."""
    result = subprocess.run([ROOT / "scripts" / "dev", "client"], cwd=ROOT, capture_output=True, text=True, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # What the generator printed: from its command line to the next step's (pip may warn before it).
    generator = output.split("openapi-python-client generate", 1)[1].split("\n==> ", 1)[0]
    assert "warning" not in generator.lower(), output
    sys.path.insert(0, str(PYTHON_CLIENT))
    try:
        yield importlib.import_module("study_sessions_client")
    finally:
        sys.path.remove(str(PYTHON_CLIENT))


@pytest.mark.backends("sqlite")
def test_a_generated_python_client_drives_the_live_service(tmp_path: Path, database_url: str, client_package: Any):

    limits = {"API_KEYS": digest(TEST_API_KEY), "RATE_LIMIT_WRITE": "7/minute"}
    with service(tmp_path, database_url, DEV_RUN, **limits) as (live_url, _):
        base_url = f"{live_url}/api/v1"
        client = client_package.AuthenticatedClient(
            base_url=base_url, token=TEST_API_KEY, prefix="", auth_header_name="X-API-Key"
        )
        drive(client, client_package.Client(base_url=base_url))


def drive(client: Any, anonymous: Any) -> None:
    from study_sessions_client.api.groups import list_groups
    from study_sessions_client.api.study_activities import list_study_activities
    from study_sessions_client.api.study_sessions import create_study_session, get_study_session, list_study_sessions
    from study_sessions_client.models import GroupPage, Problem, StudyActivityPage, StudySession, StudySessionCreate

    groups = list_groups.sync(client=client)
    activities = list_study_activities.sync(client=client, per_page=100)
    assert isinstance(groups, GroupPage) and isinstance(activities, StudyActivityPage)
    group, activity = groups.items[0], activities.items[-1]

    created = create_study_session.sync_detailed(
        client=client, body=StudySessionCreate(group_id=group.id, study_activity_id=activity.id)
    )
    assert created.status_code == 201 and isinstance(created.parsed, StudySession)
    session = created.parsed
    assert (session.group_name, session.study_activity_name) == (group.name, activity.name)

    location = created.headers["location"]
    assert location == f"/api/v1/study-sessions/{session.id}"
    session_id = int(location.rsplit("/", 1)[1])
    fetched = get_study_session.sync(client=client, id=session_id)
    assert fetched == session

    listed = list_study_sessions.sync(client=client, per_page=100)
    assert not isinstance(listed, Problem) and listed is not None
    assert session.id in [s.id for s in listed.items]

    refused = create_study_session.sync_detailed(
        client=client, body=StudySessionCreate(group_id=987654, study_activity_id=activity.id)
    )
    assert refused.status_code == 422
    problem = refused.parsed
    assert isinstance(problem, Problem)
    assert problem.status == 422 and problem.title == "Unprocessable Content"
    assert [(e.pointer, e.detail) for e in problem.errors] == [("/group_id", "There is no group with id 987654.")]

    missing = get_study_session.sync(client=client, id=987654)
    assert isinstance(missing, Problem) and missing.status == 404

    from study_sessions_client.api.reviews import create_review, list_reviews
    from study_sessions_client.models import ReviewCreate, ReviewItem

    reviewed = [
        create_review.sync(client=client, id=session.id, body=ReviewCreate(word_id=word, correct=correct))
        for word, correct in ((1, True), (2, False))
    ]
    assert all(isinstance(r, ReviewItem) for r in reviewed)
    counted = get_study_session.sync(client=client, id=session.id)
    assert isinstance(counted, StudySession)
    assert (counted.review_items_count, counted.correct_count, counted.wrong_count) == (2, 1, 1)
    reviews = list_reviews.sync(client=client, id=session.id)
    assert reviews is not None and not isinstance(reviews, Problem) and reviews.total == 2
    outside = create_review.sync(client=client, id=session.id, body=ReviewCreate(word_id=40, correct=True))
    assert isinstance(outside, Problem) and outside.status == 422 and outside.errors[0].pointer == "/word_id"

    unauthorized = create_study_session.sync_detailed(
        client=anonymous, body=StudySessionCreate(group_id=1, study_activity_id=1)
    )
    assert unauthorized.status_code == 401 and isinstance(unauthorized.parsed, Problem)
    assert unauthorized.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'

    body = StudySessionCreate(group_id=group.id, study_activity_id=activity.id)
    first = create_study_session.sync_detailed(client=client, body=body, idempotency_key="client-retry")
    replayed = create_study_session.sync_detailed(client=client, body=body, idempotency_key="client-retry")
    assert first.status_code == replayed.status_code == 201
    assert isinstance(replayed.parsed, StudySession) and replayed.parsed == first.parsed
    assert replayed.headers["location"] == first.headers["location"]

    # The quota, 7 writes a minute for this key, is used up by now: a create, the 422, three
    # reviews, a create and its replay.
    throttled = create_study_session.sync_detailed(client=client, body=body)
    assert throttled.status_code == 429
    assert isinstance(throttled.parsed, Problem) and throttled.parsed.status == 429
    assert int(throttled.headers["retry-after"]) >= 1 and throttled.headers["ratelimit"].startswith('"write";r=0')
