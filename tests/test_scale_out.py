"""Many writers on one PostgreSQL database: two server processes (production's command), 48
clients at once, directly and behind PgBouncer in transaction pooling mode; and a connection
lost under a running service; and ids after a client-chosen one, as on SQLite."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.pool import NullPool
from starlette.testclient import TestClient

from app import create_app
from edge.settings import Settings
from storage.engine import make_engine
from tests.conftest import count_sessions
from tests.servers import GUNICORN, pgbouncer, service

CLIENTS = 48
CREATES_EACH = 20


@pytest.fixture(params=["direct", "pgbouncer"])
def served_database_url(request: pytest.FixtureRequest, tmp_path: Path, database_url: str) -> Iterator[str]:
    """How the servers reach the test's PostgreSQL database: directly, or through PgBouncer."""
    if request.param == "direct":
        yield database_url
    else:
        with pgbouncer(tmp_path, database_url, pool_size=8) as url:
            yield url


@pytest.mark.live
@pytest.mark.backends("postgresql")
def test_48_clients_on_two_servers_never_see_an_idless_create_refused(
    tmp_path: Path, served_database_url: str, engine: Engine
):
    frontier = 0  # the largest id any client has seen: a chooser takes ids just ahead of it
    lock = threading.Lock()
    results: list[tuple[int | None, int, dict]] = []

    def client(number: int, urls: list[str]) -> None:
        nonlocal frontier
        chooses = number % 5 == 0  # a fifth of the clients pick their own ids
        generator = random.Random(number)
        with httpx.Client(timeout=30) as http:
            for i in range(CREATES_EACH):
                body: dict = {"group_id": 1 + i % 4, "study_activity_id": 1 + i % 3}
                if chooses:
                    with lock:
                        body["id"] = frontier + generator.randint(1, 4)
                response = http.post(f"{urls[(number + i) % 2]}/api/v1/study-sessions", json=body)
                answer = response.json()
                with lock:
                    results.append((body.get("id"), response.status_code, {**answer, **dict(response.headers)}))
                    if response.status_code == 201:
                        frontier = max(frontier, answer["id"])

    with ExitStack() as servers:
        urls = [
            servers.enter_context(service(tmp_path, served_database_url, GUNICORN, WORKERS="1", DB_TIMEOUT="10"))[0]
            for _ in range(2)
        ]
        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(lambda number: client(number, urls), range(CLIENTS)))
        conflicts = [(chosen, answer) for chosen, status, answer in results if status == 409]
        existing = {chosen: httpx.get(f"{urls[1]}/api/v1/study-sessions/{chosen}") for chosen, _ in conflicts}

    idless = [status for chosen, status, _ in results if chosen is None]
    chosen = [status for chosen, status, _ in results if chosen is not None]
    created = [answer["id"] for _, status, answer in results if status == 201]
    assert len(results) == CLIENTS * CREATES_EACH
    assert set(idless) == {201}, f"id-less creates answered {sorted(set(idless))}"
    assert set(chosen) <= {201, 409}
    assert conflicts, "no client-chosen id met a taken one: the test did not test the race"
    for id, answer in conflicts:
        assert answer["location"] == f"/api/v1/study-sessions/{id}"
        assert existing[id].status_code == 200 and existing[id].json()["id"] == id
    assert len(set(created)) == len(created)
    assert count_sessions(engine) == len(created)


@pytest.mark.backends("postgresql")
def test_a_lost_connection_costs_a_write_one_503_and_a_read_nothing_then_heals(
    settings: Settings, engine: Engine, database_url: str
):
    single = Settings(**{**settings.__dict__, "db_pool_size": 1})
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")

    def cut() -> None:  # what a restart or a network cut does to the service's connection
        with admin.connect() as conn:
            conn.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )

    body = {"group_id": 1, "study_activity_id": 1}
    with TestClient(create_app(single), raise_server_exceptions=False) as client:
        before = client.get("/api/v1/groups").status_code
        cut()
        write_met_it = client.post("/api/v1/study-sessions", json=body)
        write_after = client.post("/api/v1/study-sessions", json=body).status_code
        cut()
        read_met_it = client.get("/api/v1/groups").status_code  # tried again on a new connection
        read_after = client.get("/api/v1/study-sessions").status_code
    admin.dispose()

    assert before == 200
    assert write_met_it.status_code == 503 and write_met_it.headers["retry-after"]
    assert (write_after, read_met_it, read_after) == (201, 200, 200)
    engine.dispose()  # the cut took the test's own pooled connection too
    assert count_sessions(engine) == 1


def test_after_a_client_chose_id_1000_the_next_idless_create_gets_1001(client: TestClient, engine: Engine):
    body = {"group_id": 1, "study_activity_id": 1}
    first = client.post("/api/v1/study-sessions", json=body)
    chosen = client.post("/api/v1/study-sessions", json={**body, "id": 1000})
    after = [client.post("/api/v1/study-sessions", json=body) for _ in range(2)]

    assert (first.json()["id"], chosen.json()["id"]) == (1, 1000)
    assert [a.json()["id"] for a in after] == [1001, 1002]
    assert count_sessions(engine) == 4


@pytest.mark.backends("postgresql")
def test_behind_pgbouncer_every_transaction_of_the_service_is_in_utc(tmp_path: Path, database_url: str):
    # One server connection shared by the service and a client that never pinned its zone, on a
    # database whose time zone is west of UTC: PgBouncer sets each client's zone as it lends it.
    name = database_url.rsplit("/", 1)[1]
    admin = create_engine(database_url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone = 'America/New_York'"))
    admin.dispose()
    with pgbouncer(tmp_path, database_url, pool_size=1) as url:
        service_engine = make_engine(url, pool_size=1)
        other = create_engine(url, poolclass=NullPool)
        zones = []
        for _ in range(3):
            for engine in (service_engine, other):
                with engine.begin() as conn:
                    zones.append(conn.execute(text("SHOW timezone")).scalar_one())
        service_engine.dispose()
        other.dispose()

    assert zones == ["UTC", "America/New_York"] * 3
