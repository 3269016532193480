"""Fixtures: a migrated and seeded SQLite file per test, and the service on it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from starlette.testclient import TestClient

from app import create_app
from edge.settings import Settings
from storage import migrate
from storage.engine import make_engine
from storage.schema import study_sessions


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(database_url=f"sqlite:///{tmp_path}/study.db", db_timeout=0.2, validate_responses=True)


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url, busy_timeout=settings.db_timeout)
    migrate.upgrade(engine)
    migrate.seed(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture(params=["/api/v1", "/api"])
def base(request: pytest.FixtureRequest) -> str:
    """Each base path the service answers on."""
    return str(request.param)


def count_sessions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(study_sessions)).scalar_one())
