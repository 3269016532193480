"""The OpenAPI document as a product: complete, named for generators, and true to the code."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from edge.settings import Settings
from storage.groups import Group
from storage.reviews import ReviewItem
from storage.study_activities import StudyActivity
from storage.study_sessions import StudySession
from storage.words import Word

FILE = Path(__file__).resolve().parent.parent / "openapi" / "openapi.yaml"
DOCUMENT: dict[str, Any] = yaml.safe_load(FILE.read_text())
OPERATIONS = [
    (path, method, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
    if method in ("get", "post", "put", "patch", "delete")
]
IDS = [operation["operationId"] for _, _, operation in OPERATIONS]


def resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = DOCUMENT
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def has_example(media: dict[str, Any]) -> bool:
    return "example" in media or bool(media.get("examples"))


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=IDS)
def test_every_operation_is_documented_with_examples_for_every_request_and_response(
    path: str, method: str, operation: dict[str, Any]
):
    assert operation["summary"] and operation["description"] and operation["tags"]
    if "requestBody" in operation:
        for media in operation["requestBody"]["content"].values():
            assert has_example(media), f"{method} {path}: request without an example"
    for status, response in operation["responses"].items():
        for media_type, media in resolve(response)["content"].items():
            assert has_example(media), f"{method} {path} {status} {media_type}: no example"


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=IDS)
def test_every_error_the_service_can_give_is_declared_as_a_problem(path: str, method: str, operation: dict[str, Any]):
    expected = {"400", "404", "405", "408", "414", "431", "500"}  # 408, 414: a head too slow, too long
    if operation["operationId"] not in ("get_health", "get_metrics"):  # neither touches the database
        expected |= {"503"}
    if "operations" not in operation["tags"]:  # the platform's own endpoints are not rate limited
        expected |= {"429"}
    if method == "post":
        expected |= {"401", "409", "413", "415", "422"}
    declared = {status for status in operation["responses"] if status >= "400"}

    assert declared == expected
    for status in declared:
        content = resolve(operation["responses"][status])["content"]
        assert list(content) == ["application/problem+json"]
        assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
        assert "X-Request-ID" in resolve(operation["responses"][status])["headers"]


@pytest.mark.parametrize(("path", "method", "operation"), OPERATIONS, ids=IDS)
def test_bodies_are_named_components_so_generated_clients_get_one_type_per_concept(
    path: str, method: str, operation: dict[str, Any]
):
    bodies = [media["schema"] for media in operation.get("requestBody", {}).get("content", {}).values()]
    for response in operation["responses"].values():
        bodies += [media["schema"] for media in resolve(response)["content"].values()]

    assert all(set(schema) == {"$ref"} for schema in bodies), f"{method} {path} has an inline schema"


@pytest.mark.parametrize(
    ("schema", "record"),
    [
        ("StudySession", StudySession),
        ("Group", Group),
        ("StudyActivity", StudyActivity),
        ("ReviewItem", ReviewItem),
        ("Word", Word),
    ],
)
def test_the_spec_names_are_the_names_in_the_code(schema: str, record: type):
    properties = DOCUMENT["components"]["schemas"][schema]["properties"]

    assert list(properties) == [field.name for field in dataclasses.fields(record)]
    assert DOCUMENT["components"]["schemas"][schema]["additionalProperties"] is False


def test_create_links_to_get_by_the_body_id_and_by_the_location_header():
    links = DOCUMENT["paths"]["/study-sessions"]["post"]["responses"]["201"]["links"]
    reads = [link for link in links.values() if link["operationId"] == "get_study_session"]

    assert {link["operationId"] for link in links.values()} == {"get_study_session", "create_review", "list_reviews"}
    assert {link["parameters"]["id"] for link in reads} == {
        "$response.body#/id",
        "$response.header.Location#regex:/study-sessions/([0-9]+)$",
    }


LINKS = [
    (f"{method} {path} {status} {name}", link)
    for path, method, operation in OPERATIONS
    for status, response in operation["responses"].items()
    for name, link in resolve(response).get("links", {}).items()
]


READ_LINKS = [
    (label, link)
    for label, link in LINKS
    if any(op["operationId"] == link["operationId"] and method == "get" for _, method, op in OPERATIONS)
]


@pytest.mark.parametrize(("label", "link"), READ_LINKS, ids=[label for label, _ in READ_LINKS])
def test_every_link_to_a_read_supplies_every_parameter_of_its_target(label: str, link: dict[str, Any]):
    # Schemathesis's "created resource not found" check gives up, silently, on a link that leaves
    # any parameter of its target to be generated: a new optional header would switch it off.
    # (A link to a create leaves its body, and its optional Idempotency-Key, to be generated.)
    target = next(operation for _, _, operation in OPERATIONS if operation["operationId"] == link["operationId"])
    wanted = {
        name if parameter["in"] == "path" else f"{parameter['in']}.{name}"
        for parameter in map(resolve, target.get("parameters", []))
        for name in [parameter["name"]]
    }

    assert set(link["parameters"]) == wanted, label


def test_responses_are_validated_in_tests_and_not_in_production(settings: Settings):
    assert settings.validate_responses is True
    assert Settings.from_env({}).validate_responses is False


def inline(node: Any, document: dict[str, Any]) -> Any:
    """`node` with every local `$ref` replaced by what it points at."""
    if isinstance(node, list):
        return [inline(item, document) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return inline(target, document)
    return {key: inline(value, document) for key, value in node.items()}


def test_the_service_serves_the_spec_file_on_each_base_path(keyed_client: TestClient, base: str):
    served = keyed_client.get(f"{base}/openapi.json").json()

    assert served.pop("servers") == [{"url": base}]
    assert inline(served, served) == inline({k: v for k, v in DOCUMENT.items() if k != "servers"}, DOCUMENT)


def test_a_service_without_api_keys_serves_a_spec_that_asks_for_none(client: TestClient):
    served = client.get("/api/v1/openapi.json").json()

    asked = [
        (path, method)
        for path, item in served["paths"].items()
        for method, operation in item.items()
        if operation.get("security") or "401" in operation["responses"]
    ]
    assert asked == []
    assert "securitySchemes" not in served["components"]


def test_the_contact_names_the_maintainers_and_points_at_no_placeholder():
    # A generated client and the docs site show it to every portal team: a made-up address there
    # sends their questions nowhere.
    contact = DOCUMENT["info"]["contact"]

    assert contact["name"]
    assert not any(
        host in str(value) for value in contact.values() for host in ("example.org", "example.com", "example.net")
    )
