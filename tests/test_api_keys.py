"""API keys: the service holds their SHA-256 digests (API_KEYS); writes need one where any is
set, reads too with READS_NEED_API_KEY; without API_KEYS it runs open and says so."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from app import create_app
from edge.logs import configure_logging
from edge.security import accepted, digest, served_spec
from edge.settings import Settings, api_key_digests
from storage.schema import idempotency_keys
from tests.conftest import TEST_API_KEY, count_sessions

BODY = {"group_id": 1, "study_activity_id": 1}
OTHER_KEY = "another-key-0000000000000000000000000000"


def assert_unauthorized(response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
    assert response.json()["title"] == "Unauthorized"
    assert "X-API-Key" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}, {"X-API-Key": TEST_API_KEY + "x"}])
def test_a_write_without_a_valid_key_is_a_401_and_stores_nothing(
    keyed_client: TestClient, engine: Engine, base: str, headers: dict
):
    assert_unauthorized(keyed_client.post(f"{base}/study-sessions", json=BODY, headers=headers))
    assert count_sessions(engine) == 0


def test_a_write_with_a_valid_key_is_served_and_reads_stay_open(keyed_client: TestClient, engine: Engine):
    created = keyed_client.post("/api/v1/study-sessions", json=BODY, headers={"X-API-Key": TEST_API_KEY})
    read = keyed_client.get(created.headers["location"])
    listed = keyed_client.get("/api/v1/study-sessions")

    assert (created.status_code, read.status_code, listed.status_code) == (201, 200, 200)
    assert count_sessions(engine) == 1


def test_a_keyed_clients_idempotency_keys_are_stored_under_a_prefix_of_its_keys_digest(
    keyed_client: TestClient, engine: Engine
):
    headers = {"X-API-Key": TEST_API_KEY, "Idempotency-Key": "once"}
    assert keyed_client.post("/api/v1/study-sessions", json=BODY, headers=headers).status_code == 201

    with engine.connect() as conn:
        stored = conn.execute(select(idempotency_keys.c.client, idempotency_keys.c.key)).all()
    assert [tuple(row) for row in stored] == [(f"key:{digest(TEST_API_KEY)[:16]}", "once")]  # not the key itself


def test_any_of_several_keys_is_accepted(keyed_settings: Settings, engine: Engine):
    settings = Settings(**{**keyed_settings.__dict__, "api_keys": frozenset({digest(OTHER_KEY), digest(TEST_API_KEY)})})
    with TestClient(create_app(settings, engine)) as client:
        statuses = [
            client.post("/api/v1/study-sessions", json=BODY, headers={"X-API-Key": key}).status_code
            for key in (TEST_API_KEY, OTHER_KEY, "neither")
        ]

    assert statuses == [201, 201, 401]


def test_reads_need_a_key_when_the_setting_closes_them(keyed_settings: Settings, engine: Engine):
    closed = Settings(**{**keyed_settings.__dict__, "reads_need_api_key": True})
    with TestClient(create_app(closed, engine)) as client:
        without = client.get("/api/v1/groups")
        keyed = client.get("/api/v1/groups", headers={"X-API-Key": TEST_API_KEY})
        platform = [client.get(f"/api/v1/{path}").status_code for path in ("healthz", "readyz", "metrics")]
        spec = client.get("/api/v1/openapi.json").json()

    assert_unauthorized(without)
    assert keyed.status_code == 200
    assert platform == [200, 200, 200]
    assert spec["paths"]["/groups"]["get"]["security"] == [{"ApiKey": []}]
    assert "security" not in spec["paths"]["/healthz"]["get"]


def test_without_api_keys_writes_need_no_key(client: TestClient, engine: Engine):
    assert client.post("/api/v1/study-sessions", json=BODY).status_code == 201
    assert client.post("/api/v1/study-sessions", json=BODY, headers={"X-API-Key": "anything"}).status_code == 201
    assert count_sessions(engine) == 2


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("DEBUG", stream)
    yield stream
    root.handlers[:], level = saved
    root.setLevel(level)


def test_an_open_services_spec_names_no_key_anywhere(client: TestClient):
    """Without API_KEYS, a client (or a client generator) reading the served spec finds nothing
    that asks for a key: no scheme, no 401, no WWW-Authenticate header to expect."""
    served = client.get("/api/v1/openapi.json").json()

    assert "securitySchemes" not in served["components"]
    assert "Unauthorized" not in served["components"]["responses"]
    assert "WWW-Authenticate" not in served["components"]["headers"]
    operations = [op for item in served["paths"].values() for op in item.values() if isinstance(op, dict)]
    assert operations and all("security" not in op and "401" not in op["responses"] for op in operations)


def test_a_path_items_shared_entries_do_not_hide_the_operations_after_them():
    """`parameters` or `summary` may come first in a path item; the operations after them are
    opened (no key) or closed (reads need one) all the same."""
    unauthorized = {"$ref": "#/components/responses/Unauthorized"}
    spec: dict[str, Any] = {
        "paths": {
            "/things/{id}": {
                "summary": "A thing",
                "parameters": [{"name": "id", "in": "path"}],
                "get": {"tags": ["things"], "responses": {"200": {}}},
                "post": {"tags": ["things"], "security": [{"ApiKey": []}], "responses": {"401": unauthorized}},
            }
        },
        "components": {"securitySchemes": {"ApiKey": {}}, "responses": {"Unauthorized": {}}, "headers": {}},
    }

    opened = served_spec(spec, api_keys=frozenset(), reads_need_api_key=False)["paths"]["/things/{id}"]
    closed = served_spec(spec, api_keys=frozenset({digest("k")}), reads_need_api_key=True)["paths"]["/things/{id}"]

    assert "security" not in opened["post"] and "401" not in opened["post"]["responses"]
    assert closed["get"]["security"] == [{"ApiKey": []}] and closed["get"]["responses"]["401"] == unauthorized
    assert "security" in spec["paths"]["/things/{id}"]["post"], "the spec given is left as it was"


def test_an_open_service_says_so_once_at_start_up(settings: Settings, engine: Engine, json_logs: io.StringIO):
    with TestClient(create_app(settings, engine)) as client:
        client.get("/api/v1/groups")
        client.get("/api/v1/groups")

    said = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert [line["levelname"] for line in said if "API_KEYS is not set" in line["message"]] == ["WARNING"]


def test_no_key_and_no_body_appear_in_the_log(keyed_settings: Settings, engine: Engine, json_logs: io.StringIO):
    secret = "s3cr3t-body-marker"
    with TestClient(create_app(keyed_settings, engine), raise_server_exceptions=False) as client:
        client.post("/api/v1/study-sessions", json={**BODY, "note": secret}, headers={"X-API-Key": TEST_API_KEY})
        client.post("/api/v1/study-sessions", json={**BODY, "created_at": secret}, headers={"X-API-Key": "nope-123"})
        client.post("/api/v1/study-sessions", json={"group_id": secret}, headers={"X-API-Key": TEST_API_KEY})
        client.post("/api/v1/study-sessions", json=BODY, headers={"X-API-Key": TEST_API_KEY})

    logged = json_logs.getvalue()
    assert '"status": 201' in logged  # the requests were logged, at DEBUG, without what they carried
    for secret_thing in (secret, TEST_API_KEY, "nope-123", digest(TEST_API_KEY)):
        assert secret_thing not in logged


def test_api_keys_must_be_digests_not_keys():
    assert api_key_digests(f" {digest('a').upper()} ,{digest('b')}, ") == frozenset({digest("a"), digest("b")})
    with pytest.raises(ValueError, match="SHA-256 hex digests"):
        api_key_digests("my-plain-key")


def test_every_digest_is_compared():
    digests = frozenset({digest("a"), digest("b"), digest("c")})

    assert [accepted(key, digests) for key in ("a", "b", "c", "d")] == [digest("a"), digest("b"), digest("c"), None]


def test_the_served_spec_names_no_server_code(keyed_client: TestClient):
    served = [keyed_client.get(f"{base}/openapi.json") for base in ("/api/v1", "/api")]

    assert [r.status_code for r in served] == [200, 200]
    assert all("x-apikeyInfoFunc" not in r.text and "edge." not in r.text for r in served)
    assert served[0].json()["components"]["securitySchemes"]["ApiKey"]["name"] == "X-API-Key"
