"""Rate limits per client, in process: with the in-memory store, and with a Redis of the test's
own where only Redis shows it (the Redis store shared by processes is in test_limits_live.py)."""

from __future__ import annotations

import asyncio
import io
import json
import re
import socket
import time
from pathlib import Path

import pytest
from limits import WindowStats
from sqlalchemy import Engine
from starlette.testclient import TestClient

from app import create_app
from edge.rate_limits import Decision, RateLimits
from edge.security import digest
from edge.settings import Settings
from tests.conftest import TEST_API_KEY, count_sessions
from tests.servers import redis_server

BODY = {"group_id": 1, "study_activity_id": 1}
SUSPENDED = "rate limits suspended: their store cannot be reached; serving without limits until it can"
RESUMED = "rate limits resumed: their store answers again"


def limited(settings: Settings, write: str = "3/minute", read: str = "5/minute") -> Settings:
    return Settings(**{**settings.__dict__, "rate_limit_write": write, "rate_limit_read": read})


def test_writes_past_the_limit_are_a_429_problem_with_retry_after_and_store_nothing(settings: Settings, engine: Engine):
    with TestClient(create_app(limited(settings), engine), raise_server_exceptions=False) as client:
        answers = [client.post("/api/v1/study-sessions", json=BODY) for _ in range(5)]

    assert [a.status_code for a in answers] == [201, 201, 201, 429, 429]
    assert [a.headers["ratelimit"].split(";")[1] for a in answers] == ["r=2", "r=1", "r=0", "r=0", "r=0"]
    assert {a.headers["ratelimit-policy"] for a in answers} == {'"write";q=3;w=60'}
    refused = answers[3]
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["title"] == "Too Many Requests"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    for later in answers[3:]:  # the reset RateLimit announces is when Retry-After says to come back
        assert later.headers["ratelimit"] == f'"write";r=0;t={later.headers["retry-after"]}'
    assert re.fullmatch(
        r"The write limit, 3 requests per 60 s, is used up: try again in \d+ s\.", refused.json()["detail"]
    )
    assert count_sessions(engine) == 3


def test_a_limit_of_one_request_says_request_not_requests(settings: Settings, engine: Engine):
    with TestClient(create_app(limited(settings, write="1/minute"), engine), raise_server_exceptions=False) as client:
        answers = [client.post("/api/v1/study-sessions", json=BODY) for _ in range(2)]

    assert [a.status_code for a in answers] == [201, 429]
    assert re.fullmatch(
        r"The write limit, 1 request per 60 s, is used up: try again in \d+ s\.", answers[1].json()["detail"]
    )


def test_reads_and_writes_have_limits_of_their_own(settings: Settings, engine: Engine):
    with TestClient(create_app(limited(settings), engine), raise_server_exceptions=False) as client:
        writes = [client.post("/api/v1/study-sessions", json=BODY).status_code for _ in range(4)]
        reads = [client.get("/api/v1/study-sessions").status_code for _ in range(6)]

    assert writes == [201, 201, 201, 429]
    assert reads == [200] * 5 + [429]


def test_reads_and_writes_keep_apart_when_their_limits_are_equal(settings: Settings, engine: Engine):
    with TestClient(create_app(limited(settings, write="3/minute", read="3/minute"), engine)) as client:
        writes = [client.post("/api/v1/study-sessions", json=BODY) for _ in range(3)]
        reads = [client.get("/api/v1/study-sessions") for _ in range(4)]

    assert [w.status_code for w in writes] == [201] * 3
    assert [r.status_code for r in reads] == [200, 200, 200, 429]
    assert [r.headers["ratelimit"].split(";")[:2] for r in reads[:3]] == [['"read"', f"r={n}"] for n in (2, 1, 0)]


def test_errors_count_and_carry_the_headers_too(settings: Settings, engine: Engine):
    with TestClient(create_app(limited(settings), engine), raise_server_exceptions=False) as client:
        answers = [
            client.post("/api/v1/study-sessions", json={"group_id": 999, "study_activity_id": 1}) for _ in range(4)
        ]

    assert [a.status_code for a in answers] == [422, 422, 422, 429]
    assert all("ratelimit" in a.headers for a in answers)


def test_the_platform_endpoints_and_the_docs_are_not_limited(settings: Settings, engine: Engine):
    with TestClient(create_app(limited(settings, read="1/minute"), engine), raise_server_exceptions=False) as client:
        statuses = {
            path: [client.get(path).status_code for _ in range(3)]
            for path in ("/api/v1/healthz", "/api/v1/readyz", "/api/v1/openapi.json", "/docs")
        }

    assert all(codes == [200, 200, 200] for codes in statuses.values()), statuses


def test_requests_that_match_no_operation_count_against_the_address_read_quota(settings: Settings, engine: Engine):
    with TestClient(create_app(limited(settings, read="3/minute"), engine), raise_server_exceptions=False) as client:
        answers = [client.get("/api/v1/" + "x" * 64000) for _ in range(3)]
        answers += [client.post("/api/nowhere"), client.get("/api/v1/groups")]

    assert [a.status_code for a in answers] == [404, 404, 404, 429, 429]
    assert answers[-2].headers["ratelimit-policy"] == '"read";q=3;w=60'


def test_requests_refused_before_any_operation_count_against_the_address_read_quota(settings: Settings, engine: Engine):
    many = "&".join(f"p{n}=1" for n in range(21))
    with TestClient(create_app(limited(settings, read="4/minute"), engine), raise_server_exceptions=False) as client:
        answers = [
            client.delete("/api/v1/groups"),  # a method the path has not
            client.get("/api/v1/groups/"),  # a trailing slash
            client.get(f"/api/v1/groups?{many}"),  # too many query parameters
            client.get("/api/v1/study-sessions/" + "1" * 5000),  # more digits than any id has
        ]
        answers += [client.post("/api/v1/groups"), client.get("/api/v1/groups/"), client.get("/api/v1/groups")]

    assert [a.status_code for a in answers] == [405, 404, 400, 400, 429, 429, 429]
    assert [a.headers["ratelimit"].split(";")[:2] for a in answers[:4]] == [['"read"', f"r={n}"] for n in (3, 2, 1, 0)]
    assert all(a.headers["content-type"] == "application/problem+json" for a in answers)


def test_each_api_key_has_its_own_quota_and_a_bad_key_counts_against_the_address(
    keyed_settings: Settings, engine: Engine
):
    other = "second-key-00000000000000000000000000000"
    settings = limited(Settings(**{**keyed_settings.__dict__, "api_keys": keyed_settings.api_keys | {digest(other)}}))
    with TestClient(create_app(settings, engine), raise_server_exceptions=False) as client:

        def post(key: str) -> int:
            return client.post("/api/v1/study-sessions", json=BODY, headers={"X-API-Key": key}).status_code

        first = [post(TEST_API_KEY) for _ in range(4)]
        second = [post(other) for _ in range(4)]
        guesses = [post(f"guess-{i}") for i in range(5)]

    assert first == second == [201, 201, 201, 429]
    assert guesses == [401, 401, 401, 429, 429]  # keys guessed from one address share its quota


def asgi_get(service, client_address: str) -> int:
    statuses = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
        "path": "/api/v1/groups", "raw_path": b"/api/v1/groups", "root_path": "", "query_string": b"",
        "headers": [(b"host", b"testserver")], "client": (client_address, 1234), "server": ("testserver", 80),
    }  # fmt: skip
    asyncio.run(service(scope, receive, send))
    return statuses[0]


def test_without_a_key_each_address_has_its_own_quota(settings: Settings, engine: Engine):
    service = create_app(limited(settings, read="2/minute"), engine)

    first = [asgi_get(service, "10.0.0.1") for _ in range(3)]
    second = [asgi_get(service, "10.0.0.2") for _ in range(3)]

    assert first == second == [200, 200, 429]


@pytest.mark.parametrize("text", ["off", "OFF", "", "none", "0"])
def test_a_limit_can_be_switched_off(settings: Settings, engine: Engine, text: str):
    with TestClient(create_app(limited(settings, write=text, read="2/minute"), engine)) as client:
        writes = [client.post("/api/v1/study-sessions", json=BODY) for _ in range(5)]
        reads = [client.get("/api/v1/groups").status_code for _ in range(3)]

    assert [w.status_code for w in writes] == [201] * 5
    assert not any("ratelimit" in w.headers or "ratelimit-policy" in w.headers for w in writes)
    assert reads == [200, 200, 429]  # the other limit still holds
    assert count_sessions(engine) == 5


@pytest.mark.parametrize("redis_url", ["redis://127.0.0.1:1", "async+redis://127.0.0.1:1"])
def test_a_limits_store_that_cannot_be_reached_serves_without_limits_and_says_so_once(
    settings: Settings, engine: Engine, json_logs: io.StringIO, redis_url: str
):
    unreachable = Settings(**{**limited(settings, write="1/minute").__dict__, "redis_url": redis_url})
    with TestClient(create_app(unreachable, engine), raise_server_exceptions=False) as client:
        answers = [client.post("/api/v1/study-sessions", json=BODY) for _ in range(4)]

    assert [a.status_code for a in answers] == [201] * 4
    assert all("ratelimit" not in a.headers for a in answers)
    said = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    warnings = [line for line in said if "rate limits" in line["message"]]
    assert [(w["levelname"], w["message"], w["store"]) for w in warnings] == [("WARNING", SUSPENDED, "redis")]
    # The store's own failure, whatever the Redis client raised underneath.
    assert re.fullmatch(r"StorageError: .*Connect call failed.*", warnings[0]["error"])
    assert count_sessions(engine) == 4


def test_a_redis_that_accepts_but_never_answers_costs_one_request_a_quarter_second_at_most():
    # A partition that drops packets: the connection opens (or hangs) and nothing comes back.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)
    port = silent.getsockname()[1]
    limits = RateLimits(write="1/minute", read="off", redis_url=f"redis://127.0.0.1:{port}")

    async def three_at_once() -> tuple[list[bool], float]:
        began = time.monotonic()
        decisions = await asyncio.gather(*(limits.hit("write", "client") for _ in range(3)))
        return [d.allowed for d in decisions], time.monotonic() - began

    try:
        allowed, took = asyncio.run(three_at_once())
        later = asyncio.run(limits.hit("write", "client"))
    finally:
        silent.close()

    assert allowed == [True, True, True] and later.allowed
    assert took < 0.6, f"three requests waited {took:.2f} s for a silent Redis"


def test_a_window_just_hit_reports_its_whole_length_not_0(monkeypatch: pytest.MonkeyPatch):
    # What `limits` computes on Redis when the key's time to live is read within the millisecond
    # it was set (2 windows, modulo the window): a reset time of now. Timing alone shows it there.
    limits = RateLimits(write="5/minute", read="off")

    async def stats_as_redis_gives_them(item: object, *identifiers: str) -> WindowStats:
        return WindowStats(time.time(), 4)

    monkeypatch.setattr(limits.limiter, "get_window_stats", stats_as_redis_gives_them)

    decision = asyncio.run(limits.hit("write", "address:10.0.0.1"))

    assert decision.headers["RateLimit"] == '"write";r=4;t=60'


def test_a_window_about_to_end_reports_1_s_left_and_asks_for_a_retry_in_1_s(monkeypatch: pytest.MonkeyPatch):
    limits = RateLimits(write="5/minute", read="off")

    async def refused(item: object, *identifiers: str) -> bool:
        return False

    async def stats_of_a_window_ending_in_half_a_second(item: object, *identifiers: str) -> WindowStats:
        return WindowStats(time.time() + 0.5, 0)

    monkeypatch.setattr(limits.limiter, "hit", refused)
    monkeypatch.setattr(limits.limiter, "get_window_stats", stats_of_a_window_ending_in_half_a_second)

    decision = asyncio.run(limits.hit("write", "address:10.0.0.1"))

    assert decision.headers["RateLimit"] == '"write";r=0;t=1'
    assert (decision.allowed, decision.retry_after) == (False, 1)


class Clock:
    """edge.rate_limits' monotonic clock, moved by the test; its wall clock, which `limits` reads
    too, stays the real one."""

    def __init__(self, now: float) -> None:
        self.now = now

    def monotonic(self) -> float:
        return self.now

    @staticmethod
    def time() -> float:
        return time.time()


def test_a_store_outage_is_tried_by_one_request_every_5_s_and_logged_once_when_it_starts_and_once_when_it_ends(
    monkeypatch: pytest.MonkeyPatch, json_logs: io.StringIO
):
    clock = Clock(1000.0)
    monkeypatch.setattr("edge.rate_limits.time", clock)
    limits = RateLimits(write="5/minute", read="off")
    store_hit = limits.limiter.hit
    tries: list[float] = []

    async def outage() -> list[Decision]:
        answer = asyncio.Event()

        async def store_down(item: object, *identifiers: str) -> bool:
            tries.append(clock.now)
            await answer.wait()
            raise ConnectionError("x" * 400)

        monkeypatch.setattr(limits.limiter, "hit", store_down)
        answer.set()
        decisions = [await limits.hit("write", "c")]  # the store fails: served, unlimited
        clock.now = 1004.9
        decisions.append(await limits.hit("write", "c"))  # the store is left alone
        clock.now = 1005.0
        answer.clear()
        probe = asyncio.create_task(limits.hit("write", "c"))  # tries the store, which takes its time
        await asyncio.sleep(0)
        decisions.append(await limits.hit("write", "c"))  # goes on meanwhile
        answer.set()
        decisions.append(await probe)
        clock.now = 1012.26
        monkeypatch.setattr(limits.limiter, "hit", store_hit)  # the store answers again
        decisions += [await limits.hit("write", "c"), await limits.hit("write", "c")]
        return decisions

    decisions = asyncio.run(outage())

    assert tries == [1000.0, 1005.0]
    assert decisions[:4] == [Decision(True, {})] * 4
    assert [d.headers["RateLimit"].split(";")[1] for d in decisions[4:]] == ["r=4", "r=3"]
    said = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    lines = [line for line in said if "rate limits" in line["message"]]
    assert [(line["levelname"], line["message"], line["store"]) for line in lines] == [
        ("WARNING", SUSPENDED, "memory"),
        ("WARNING", RESUMED, "memory"),
    ]
    assert lines[0]["error"] == ("ConnectionError: " + "x" * 400)[:300]  # a store's error, cut for the log
    assert lines[1]["suspended_s"] == 12.3


async def slow_link(redis_port: int, delay: float) -> asyncio.Server:
    """A relay to Redis that holds each of its answers `delay` seconds: a far or busy Redis."""

    async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay: float) -> None:
        try:
            while data := await source.read(65536):
                await asyncio.sleep(delay)
                sink.write(data)
                await sink.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            sink.close()

    async def relay(client: asyncio.StreamReader, to_client: asyncio.StreamWriter) -> None:
        redis, to_redis = await asyncio.open_connection("127.0.0.1", redis_port)
        await asyncio.gather(pipe(client, to_redis, 0), pipe(redis, to_client, delay))

    return await asyncio.start_server(relay, "127.0.0.1", 0)


def test_a_slow_redis_gets_a_quarter_second_in_all_then_the_request_goes_unlimited(tmp_path: Path):
    with redis_server(tmp_path) as (redis_url, _, _):
        redis_port = int(redis_url.rsplit(":", 1)[1])

        async def through(url: str) -> tuple[Decision, float]:
            limits = RateLimits(write="5/minute", read="off", redis_url=url)
            began = time.monotonic()
            decision = await limits.hit("write", "client")
            return decision, time.monotonic() - began

        async def near_then_far() -> list[tuple[Decision, float]]:
            link = await slow_link(redis_port, 0.1)  # each answer within the client's 0.25 s, all of them not
            try:
                return [
                    await through(redis_url),
                    await through(f"redis://127.0.0.1:{link.sockets[0].getsockname()[1]}"),
                ]
            finally:
                link.close()

        (near, _), (far, took) = asyncio.run(near_then_far())

    assert near.headers["RateLimit"] == '"write";r=4;t=60'
    assert far == Decision(True, {})
    # 0.25 s, and room for a loaded CI machine: what matters is that it is not served limited.
    assert took < 1.0, f"the request waited {took:.2f} s for a slow Redis"
