"""Rate limits, API keys and idempotent retries across processes: two servers (production's
command) on one database, the limits in Redis."""

from __future__ import annotations

import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from edge.security import digest
from tests.conftest import count_sessions
from tests.servers import GUNICORN, redis_server, service

pytestmark = pytest.mark.live

BODY = {"group_id": 1, "study_activity_id": 1}
SHARED_REDIS = "redis://127.0.0.1:6379"


def two_servers(stack: ExitStack, tmp_path: Path, database_url: str, **env: str) -> list[str]:
    return [stack.enter_context(service(tmp_path, database_url, GUNICORN, WORKERS="1", **env))[0] for _ in range(2)]


def test_a_write_limit_in_redis_holds_across_two_servers(tmp_path: Path, database_url: str, engine: Engine):
    key = f"limit-{secrets.token_hex(8)}"  # a bucket of this run's own in the machine's Redis
    env = {"API_KEYS": digest(key), "REDIS_URL": SHARED_REDIS, "RATE_LIMIT_WRITE": "5/minute"}
    with ExitStack() as stack:
        urls = two_servers(stack, tmp_path, database_url, **env)
        answers = [
            httpx.post(f"{urls[i % 2]}/api/v1/study-sessions", json=BODY, headers={"X-API-Key": key}) for i in range(10)
        ]

    assert sorted(a.status_code for a in answers) == [201] * 5 + [429] * 5
    assert {a.status_code for a in answers[5:]} == {429}
    assert count_sessions(engine) == 5


def test_an_idempotent_retry_replays_through_the_other_server(tmp_path: Path, database_url: str, engine: Engine):
    with ExitStack() as stack:
        first_server, other_server = two_servers(stack, tmp_path, database_url)
        first = httpx.post(f"{first_server}/api/v1/study-sessions", json=BODY, headers={"Idempotency-Key": "across"})
        again = httpx.post(f"{other_server}/api/v1/study-sessions", json=BODY, headers={"Idempotency-Key": "across"})

    assert first.status_code == again.status_code == 201
    assert (first.json(), first.headers["location"]) == (again.json(), again.headers["location"])
    assert count_sessions(engine) == 1


def test_the_same_key_sent_50_times_at_once_makes_one_session_and_one_answer(
    tmp_path: Path, database_url: str, engine: Engine
):
    with ExitStack() as stack:
        urls = two_servers(stack, tmp_path, database_url)
        with ThreadPoolExecutor(50) as pool:
            answers = list(
                pool.map(
                    lambda i: httpx.post(
                        f"{urls[i % 2]}/api/v1/study-sessions",
                        json=BODY,
                        headers={"Idempotency-Key": "fifty"},
                        timeout=30,
                    ),
                    range(50),
                )
            )

    assert [a.status_code for a in answers] == [201] * 50
    assert len({(a.text, a.headers["location"]) for a in answers}) == 1
    assert count_sessions(engine) == 1


@pytest.mark.backends("sqlite")
def test_a_redis_outage_serves_unlimited_says_so_once_and_the_limits_come_back(tmp_path: Path, database_url: str):
    with redis_server(tmp_path) as (redis_url, stop_redis, start_redis):
        env = {"REDIS_URL": redis_url, "RATE_LIMIT_READ": "20/minute"}
        with service(tmp_path, database_url, GUNICORN, WORKERS="1", **env) as (url, _):
            statuses = []

            def burst(n: int) -> list[int]:
                return [httpx.get(f"{url}/api/v1/groups").status_code for _ in range(n)]

            statuses.append(burst(25))  # the limit holds
            stop_redis()
            statuses.append(burst(25))  # Redis is gone: served, unlimited
            start_redis()  # an empty Redis: the window starts afresh
            time.sleep(6)  # the limiter tries Redis again every 5 s
            statuses.append(burst(25))
        log = next(tmp_path.glob("server-*.log")).read_text()

    assert statuses[0] == [200] * 20 + [429] * 5
    assert statuses[1] == [200] * 25
    assert statuses[2][:19] == [200] * 19 and statuses[2][-5:] == [429] * 5
    assert log.count("rate limits suspended") == 1
    assert log.count("rate limits resumed") == 1


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        (None, {"203.0.113.1": [200, 200], "203.0.113.2": [200, 429]}),  # spoofed names share the address's quota
        ("127.0.0.1", {"203.0.113.1": [200, 200], "203.0.113.2": [200, 200]}),  # the proxy names each client
    ],
)
def test_forwarded_for_names_the_client_only_when_forwarded_allow_ips_trusts_the_proxy(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch, trusted: str | None, expected: dict
):
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)  # unset, as it is by default
    env = {"RATE_LIMIT_READ": "3/minute", **({"FORWARDED_ALLOW_IPS": trusted} if trusted else {})}
    with service(tmp_path, database_url, GUNICORN, WORKERS="1", **env) as (url, _):
        statuses: dict[str, list[int]] = {name: [] for name in expected}
        for name in expected:
            for _ in range(2):
                response = httpx.get(f"{url}/api/v1/groups", headers={"X-Forwarded-For": name})
                statuses[name].append(response.status_code)

    assert statuses == expected
