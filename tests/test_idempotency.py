"""Idempotent creates (Idempotency-Key): a retry gets the first answer and creates nothing."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, create_engine, func, select, text, update
from starlette.testclient import TestClient

from app import create_app
from edge.security import digest
from edge.settings import Settings
from storage import idempotency
from storage.schema import idempotency_keys
from tests.conftest import TEST_API_KEY, count_sessions

BODY = {"group_id": 1, "study_activity_id": 2}


def post(client: TestClient, body: dict, key: str | None, base: str = "/api/v1", **headers: str):
    if key is not None:
        headers["Idempotency-Key"] = key
    return client.post(f"{base}/study-sessions", json=body, headers=headers)


def test_a_retry_with_the_same_key_and_body_gets_the_first_answer_and_creates_nothing(
    client: TestClient, engine: Engine, base: str
):
    first = post(client, BODY, "retry-1", base)
    again = post(client, BODY, "retry-1", base)
    other_base = post(client, BODY, "retry-1", "/api" if base == "/api/v1" else "/api/v1")

    assert first.status_code == again.status_code == other_base.status_code == 201
    assert first.json() == again.json() == other_base.json()
    assert first.headers["location"] == again.headers["location"] == other_base.headers["location"]
    assert count_sessions(engine) == 1


def test_the_same_key_with_another_body_is_a_422_naming_the_key_and_stores_nothing(client: TestClient, engine: Engine):
    post(client, BODY, "reused")

    refused = post(client, {**BODY, "study_activity_id": 3}, "reused")

    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert (refused.json()["title"], refused.json()["detail"]) == (
        "Unprocessable Content",
        "The request cannot be applied as it stands.",
    )
    assert refused.json()["errors"] == [
        {"detail": "Idempotency key 'reused' was used with another request.", "parameter": "Idempotency-Key"}
    ]
    assert count_sessions(engine) == 1


def test_keys_belong_to_their_client(keyed_settings: Settings, engine: Engine):
    second = "the-other-clients-key-000000000000000000"
    settings = Settings(**{**keyed_settings.__dict__, "api_keys": keyed_settings.api_keys | {digest(second)}})
    with TestClient(create_app(settings, engine)) as client:
        mine = post(client, BODY, "shared-name", **{"X-API-Key": TEST_API_KEY})
        theirs = post(client, BODY, "shared-name", **{"X-API-Key": second})

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert count_sessions(engine) == 2


def test_on_an_open_service_two_addresses_sending_one_key_get_two_sessions(settings: Settings, engine: Engine):
    service = create_app(settings, engine)
    with (
        TestClient(service, client=("10.0.0.1", 40000)) as first,
        TestClient(service, client=("10.0.0.2", 40000)) as second,
    ):
        mine = post(first, BODY, "same-name")
        theirs = post(second, BODY, "same-name")
        mine_again = post(first, BODY, "same-name")

    assert mine.status_code == theirs.status_code == 201
    assert mine.json()["id"] != theirs.json()["id"]
    assert mine_again.json() == mine.json()
    assert count_sessions(engine) == 2


def test_a_failed_first_attempt_keeps_nothing_so_a_retry_is_tried_afresh(client: TestClient, engine: Engine):
    first = post(client, {"id": 9, "group_id": 999, "study_activity_id": 1}, "after-a-422")
    again = post(client, {"id": 9, "group_id": 999, "study_activity_id": 1}, "after-a-422")

    assert first.status_code == again.status_code == 422
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(idempotency_keys)).scalar_one() == 0


def test_a_key_expires_after_24_hours_and_is_then_taken_anew(client: TestClient, engine: Engine):
    first = post(client, BODY, "old-key")
    with engine.begin() as conn:
        conn.execute(update(idempotency_keys).values(created_at=datetime.now(UTC) - timedelta(hours=25)))

    later = post(client, {**BODY, "group_id": 2}, "old-key")

    assert later.status_code == 201 and later.json()["id"] != first.json()["id"]
    assert count_sessions(engine) == 2


def test_a_key_two_hours_old_still_replays(client: TestClient, engine: Engine):
    first = post(client, BODY, "two-hours")
    with engine.begin() as conn:
        conn.execute(update(idempotency_keys).values(created_at=datetime.now(UTC) - timedelta(hours=2)))

    again = post(client, BODY, "two-hours")

    assert again.status_code == 201 and again.json() == first.json()
    assert count_sessions(engine) == 1


def test_expired_keys_are_swept_without_a_cron_job(client: TestClient, engine: Engine, monkeypatch: pytest.MonkeyPatch):
    for n in range(5):
        post(client, BODY, f"sweep-{n}")
    kept = post(client, BODY, "an-hour-old")
    with engine.begin() as conn:
        conn.execute(update(idempotency_keys).values(created_at=datetime.now(UTC) - timedelta(hours=30)))
        conn.execute(
            update(idempotency_keys)
            .where(idempotency_keys.c.key == "an-hour-old")
            .values(created_at=datetime.now(UTC) - timedelta(hours=1))
        )
    monkeypatch.setattr(idempotency, "SWEEP_EVERY", 1)  # the sweep runs on one request in a hundred

    post(client, BODY, "fresh")

    with engine.connect() as conn:
        assert sorted(conn.execute(select(idempotency_keys.c.key)).scalars()) == ["an-hour-old", "fresh"]
    assert post(client, BODY, "an-hour-old").json() == kept.json()  # and it still replays


@pytest.mark.backends("postgresql")
def test_a_sweep_leaves_a_key_that_is_being_taken_anew(client: TestClient, engine: Engine):
    # A request takes an expired key anew while another request's sweep comes by: the sweep
    # neither waits for it nor deletes the key once it is fresh (a retry would then create again).
    post(client, BODY, "renewed")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(update(idempotency_keys).values(created_at=now - timedelta(hours=25)))
    renewing = engine.connect()
    renewing.begin()
    names = {"who": "-", "which": "renewed", "request": "another", "now": now, "cutoff": now - idempotency.KEEP}
    assert renewing.execute(idempotency._claims["postgresql"], {**names, "who": stored_client(engine)}).first()
    swept = threading.Event()

    def sweep() -> None:
        with engine.begin() as conn:
            conn.execute(idempotency._sweep, {"cutoff": now - idempotency.KEEP})
        swept.set()

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    waited = not swept.wait(2)
    renewing.commit()
    renewing.close()
    sweeper.join(10)

    assert not waited
    with engine.connect() as conn:
        assert conn.execute(select(idempotency_keys.c.fingerprint)).scalars().all() == ["another"]


def stored_client(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(idempotency_keys.c.client)).scalar_one())


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "ключ"])
def test_a_malformed_key_is_a_400_naming_the_header(client: TestClient, engine: Engine, key: str):
    response = client.post("/api/v1/study-sessions", json=BODY, headers={b"Idempotency-Key": key.encode()})

    assert response.status_code == 400
    assert response.json()["errors"][0]["parameter"] == "Idempotency-Key"
    assert count_sessions(engine) == 0


@pytest.mark.backends("postgresql")
def test_a_retry_while_the_first_is_still_running_is_a_409_then_it_gets_the_answer(
    client: TestClient, engine: Engine, database_url: str
):
    holder = create_engine(database_url).connect()
    holder.execute(text("LOCK TABLE study_sessions IN EXCLUSIVE MODE"))  # the first create waits here
    first: list = []
    waiting = threading.Thread(target=lambda: first.append(post(client, BODY, "slow")))
    waiting.start()
    time.sleep(0.5)
    try:
        during = post(client, BODY, "slow")
    finally:
        holder.rollback()
        holder.close()
    waiting.join(timeout=30)
    after = post(client, BODY, "slow")

    assert during.status_code == 409
    assert during.headers["content-type"] == "application/problem+json"
    assert during.json()["title"] == "Conflict"
    assert during.json()["detail"] == (
        "A request with idempotency key 'slow' is still being processed. Try again shortly to get its answer."
    )
    assert first[0].status_code == 201
    assert after.status_code == 201 and after.json() == first[0].json()
    assert count_sessions(engine) == 1


def test_a_key_exactly_24_hours_old_still_replays_its_answer(engine: Engine):
    first = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
    answers = iter([idempotency.Response(201, {"n": 1}, {}), idempotency.Response(201, {"n": 2}, {})])

    def once(now: datetime) -> idempotency.Response:
        with engine.begin() as conn:
            return idempotency.once(
                conn, client="c", key="k", fingerprint="f", now=now, work=lambda _conn: next(answers)
            )

    assert once(first).body == {"n": 1}
    assert once(first + idempotency.KEEP).body == {"n": 1}
    assert once(first + idempotency.KEEP + timedelta(microseconds=1)).body == {"n": 2}
