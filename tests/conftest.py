"""Fixtures: a migrated and seeded database per test, on each backend (a SQLite file, and a new
PostgreSQL database made from a migrated template), and the service on it.

PostgreSQL is the server that TEST_POSTGRESQL_URL names (the one on 127.0.0.1:5432 by default).
Where it cannot be reached the PostgreSQL half is skipped, saying why, except in CI (CI=true),
where that is a failure. A test marked `backends("sqlite")` runs on the backends it names only."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hypothesis
import pytest
from sqlalchemy import Engine, create_engine, func, make_url, select, text
from starlette.testclient import TestClient

from app import create_app
from edge.logs import configure_logging
from edge.security import digest
from edge.settings import Settings
from storage import migrate
from storage.engine import make_engine
from storage.schema import study_sessions
from tests.servers import ROOT

BACKENDS = ("sqlite", "postgresql")
RUN_BACKENDS = tuple(os.environ.get("TEST_BACKENDS", ",".join(BACKENDS)).split(","))
"""The backends this run covers: both unless TEST_BACKENDS names fewer (`./scripts/dev quick`
runs SQLite alone; the suite and CI run both)."""
TEST_API_KEY = "test-key-3f0c9b5e4a9e4c1e9d552f6f0e7a1b42"
POSTGRESQL_URL = os.environ.get("TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

# `./scripts/dev quick`, the inner loop, sets HYPOTHESIS_PROFILE=quick: every property and state
# machine runs, on fewer generated examples. The suite (and CI) keeps Hypothesis's defaults.
hypothesis.settings.register_profile("quick", max_examples=15, stateful_step_count=15)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "backends(*names): run on these backends only (sqlite, postgresql)")


LONGEST = ("tests/test_contract.py::test_sequences_of_calls_keep_the_contract[", "tests/test_live.py::test_dev_fuzz_")
"""Tests of one to three minutes each: the stateful Schemathesis runs and the Schemathesis CLI's."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first, then the other live ones, then those in process. pytest-xdist hands
    tests out in this order as its workers come free, so one started last would keep its worker
    busy for minutes after the others had run out of tests."""

    def rank(item: pytest.Item) -> int:
        if item.nodeid.startswith(LONGEST):
            return 0
        return 1 if item.get_closest_marker("live") or item.get_closest_marker("slow") else 2

    items.sort(key=rank)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("backends")
        names = [b for b in (marker.args if marker else BACKENDS) if b in RUN_BACKENDS]
        metafunc.parametrize("backend", names, scope="function")


def admin_engine() -> Engine:
    """PostgreSQL's server, to make and drop databases (outside transactions)."""
    return create_engine(POSTGRESQL_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})


def drop_database(admin: Engine, name: str) -> None:
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgresql_template() -> Iterator[str]:
    """A migrated and seeded PostgreSQL database that each test's database is copied from."""
    # Named when it is made, by the process that makes it: a process forked from one whose session
    # made its own (mutmut's children, each a session of its own) would take the same name, find
    # the database there, and skip every PostgreSQL test.
    template = f"study_sessions_template_{os.getpid()}"
    admin = admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{template}"'))
    except Exception as error:  # noqa: BLE001 - any failure to reach the server says the same
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL at {POSTGRESQL_URL} is needed in CI: {error}")
        pytest.skip(f"PostgreSQL at {POSTGRESQL_URL} cannot be reached: {type(error).__name__}")
    engine = make_engine(make_url(POSTGRESQL_URL).set(database=template).render_as_string(hide_password=False))
    migrate.upgrade(engine)
    migrate.seed(engine)
    engine.dispose()
    yield template
    drop_database(admin, template)
    admin.dispose()


@pytest.fixture(scope="session")
def client_packages() -> Path:
    """The folder where `./scripts/dev client` built the client packages (the wheel and, where
    Node.js is present, the npm tarball), once per run; the generator must warn of nothing."""
    result = subprocess.run(
        [ROOT / "scripts" / "dev", "client"], cwd=ROOT, capture_output=True, text=True, timeout=600, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # What the generator printed: from its command line to the next step's (pip may warn before it).
    generator = output.split("openapi-python-client generate", 1)[1].split("\n==> ", 1)[0]
    assert "warning" not in generator.lower(), output
    return ROOT / "build" / "packages"


@pytest.fixture
def database_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new, migrated and seeded database on `backend`, dropped after the test."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path}/study.db"
        return
    template = request.getfixturevalue("postgresql_template")
    name = f"study_sessions_test_{uuid.uuid4().hex[:12]}"
    admin = admin_engine()
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY'))
    yield make_url(POSTGRESQL_URL).set(database=name).render_as_string(hide_password=False)
    drop_database(admin, name)
    admin.dispose()


@pytest.fixture
def settings(database_url: str) -> Settings:
    """An open service (no API keys) without rate limits: the tests of keys and limits set theirs.
    The timeout is long enough for a loaded machine (CI); tests of a locked database set theirs."""
    return Settings(
        database_url=database_url,
        db_timeout=3.0,
        validate_responses=True,
        rate_limit_write="off",
        rate_limit_read="off",
    )


@pytest.fixture
def keyed_settings(settings: Settings) -> Settings:
    """`settings`, with API_KEYS holding TEST_API_KEY's digest, as production runs."""
    return Settings(**{**settings.__dict__, "api_keys": frozenset({digest(TEST_API_KEY)})})


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    engine = make_engine(settings.database_url, busy_timeout=settings.db_timeout)
    migrate.upgrade(engine)  # a no-op on a copy of the template
    migrate.seed(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def client(settings: Settings, engine: Engine) -> Iterator[TestClient]:
    """The service on the test's database, with connections of its own (its threads keep theirs,
    so a test's own queries, through `engine`, never wait for one)."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def keyed_client(keyed_settings: Settings, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(keyed_settings), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The service's JSON log lines, written to a string for the test to read."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("INFO", stream)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


@pytest.fixture(params=["/api/v1", "/api"])
def base(request: pytest.FixtureRequest) -> str:
    """Each base path the service answers on."""
    return str(request.param)


def asgi_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """The ASGI scope a server hands the service for an HTTP/1.1 request, with `headers` after Host:
    for tests that drive the app's receive and send themselves."""
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers], "client": ("127.0.0.1", 1), "server": ("testserver", 80),
    }  # fmt: skip


def count_sessions(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(study_sessions)).scalar_one())
