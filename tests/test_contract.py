"""Schemathesis over the whole spec, in process through the ASGI app, on both base paths, with API
keys required as in production: every default check and ours (tests/contract_checks.py),
response validation on, a fixed seed (schemathesis.toml)."""

from __future__ import annotations

from pathlib import Path

import hypothesis
import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from sqlalchemy import Engine, delete

from app import BASE_PATHS, create_app
from edge.settings import Settings
from storage import study_sessions as stored
from storage.schema import idempotency_keys, review_counts, review_items, study_sessions, word_review_counts
from tests.conftest import TEST_API_KEY
from tests.planted.lossy_service import losing_get

PROJECT_CONFIG = Path(__file__).resolve().parent.parent / "schemathesis.toml"
# The project's settings, and the key of the service these tests start with API_KEYS set.
CONFIG = SchemathesisConfig.from_str(
    f'{PROJECT_CONFIG.read_text()}\n[auth.openapi.ApiKey]\napi_key = "{TEST_API_KEY}"\n',
    base_dir=str(PROJECT_CONFIG.parent),
)


@pytest.fixture(params=BASE_PATHS)
def api_schema(request: pytest.FixtureRequest, keyed_settings: Settings, engine: Engine):
    # With API keys, as production runs; CONFIG hands Schemathesis the key.
    service = create_app(keyed_settings, engine)
    return schemathesis.openapi.from_asgi(f"{request.param}/openapi.json", service, config=CONFIG)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
def test_every_operation_keeps_the_contract(case):
    case.call_and_validate()


def run_sequences(api_schema, engine: Engine, profile: str | None = None) -> None:
    """The state machine's scenarios, as many as the loaded Hypothesis profile says (or `profile`)."""

    class StudySessionsMachine(api_schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            # Every scenario starts from the seeded database, so a replayed scenario meets the same
            # answers (a reused id is not a 409 the second time round only).
            with engine.begin() as conn:
                conn.execute(delete(idempotency_keys))  # their answers name sessions deleted here
                conn.execute(delete(review_items))
                conn.execute(delete(review_counts))
                conn.execute(delete(word_review_counts))
                conn.execute(delete(study_sessions))

    parent = hypothesis.settings.get_profile(profile) if profile else hypothesis.settings()
    StudySessionsMachine.run(settings=hypothesis.settings(parent, derandomize=True, database=None, deadline=None))


def test_sequences_of_calls_keep_the_contract(api_schema, engine: Engine):
    run_sequences(api_schema, engine)


@pytest.mark.parametrize(
    "lost",
    [
        pytest.param(lambda id: id % 2 == 0, id="even ids"),
        pytest.param(lambda id: id > 2**31 - 1, id="ids past 32 bits"),
    ],
)
def test_the_sequences_catch_a_created_session_that_cannot_be_read(
    api_schema, engine: Engine, monkeypatch: pytest.MonkeyPatch, lost
):
    monkeypatch.setattr(stored, "get", losing_get(lost))

    with pytest.raises(BaseExceptionGroup, match="created_sessions_are_readable") as failed:
        run_sequences(api_schema, engine, profile="default")  # finding the bug takes the full run

    assert "answered 201, then GET 404" in str(failed.value)
