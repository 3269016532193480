"""What a client is told about a request that the spec refuses (edge/validation.py): every
violation at once, each named by a JSON pointer into the body or by the parameter's name, in a
stable order, and nothing stored."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from starlette.testclient import TestClient

from tests.conftest import count_sessions

PROBLEM = "application/problem+json"
JSON = {"content-type": "application/json"}
BODY_INVALID = "The request body is invalid: {} problem(s)."
PARAMETERS_INVALID = "The request's parameters are invalid: {} problem(s)."


def problem_of(response) -> tuple[str, list[dict[str, str]]]:
    """A 400 problem's detail and its list of errors."""
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    return problem["detail"], problem["errors"]


def post_raw(client: TestClient, content: bytes):
    return client.post("/api/v1/study-sessions", content=content, headers=JSON)


@pytest.mark.parametrize(
    ("content", "detail", "why"),
    [
        (b"\xff\xfe{}", "The request body is not valid UTF-8.", "'utf-8' codec can't decode byte 0xff in position 0: "
         "invalid start byte"),
        (b"[" * 5000 + b"]" * 5000, "The request body is nested too deeply.", "Too deeply nested."),
        (b'{"group_id": 1,', "The request body is not valid JSON.", "Expecting property name enclosed in double "
         "quotes: line 1 column 16 (char 15)"),
        (b'{"group_id": NaN, "study_activity_id": 1}', "The request body is not valid JSON.", "NaN is not JSON"),
        (b'{"group_id": 1, "group_id": 2, "study_activity_id": 1}', "The request body is not valid JSON.",
         "an object has the same name twice"),
        (b'{"group_id": 1' + b"0" * 1000 + b', "study_activity_id": 1}', "The request body is not valid JSON.",
         "a number has more than 1000 digits"),
        (b"null", "The request body is null.", "The body must be a JSON object."),
    ],
    ids=["not utf-8", "too deep", "cut short", "NaN", "a name twice", "1001 digits", "null"],
)  # fmt: skip
def test_a_body_that_is_not_a_json_object_is_a_400_saying_why_at_its_root(
    client: TestClient, engine: Engine, content: bytes, detail: str, why: str
):
    assert problem_of(post_raw(client, content)) == (detail, [{"detail": why, "pointer": ""}])
    assert count_sessions(engine) == 0


def test_a_number_of_1000_digits_is_json_and_only_out_of_range(client: TestClient, engine: Engine):
    id_ = b"1" + b"0" * 999

    detail, errors = problem_of(post_raw(client, b'{"id": ' + id_ + b', "group_id": 1, "study_activity_id": 1}'))

    assert detail == BODY_INVALID.format(1)
    assert [e["pointer"] for e in errors] == ["/id"]
    assert count_sessions(engine) == 0


@pytest.mark.parametrize(
    ("body", "missing"),
    [
        ({}, ["group_id", "study_activity_id"]),
        ({"study_activity_id": 1}, ["group_id"]),
        ({"group_id": 1}, ["study_activity_id"]),
    ],
)
def test_each_missing_property_is_named_once_in_the_schemas_order(
    client: TestClient, engine: Engine, body: dict, missing: list[str]
):
    response = client.post("/api/v1/study-sessions", json=body)

    assert problem_of(response) == (
        BODY_INVALID.format(len(missing)),
        [{"detail": f"'{name}' is a required property.", "pointer": f"/{name}"} for name in missing],
    )
    assert count_sessions(engine) == 0


def test_each_unknown_property_is_named_by_a_pointer_that_escapes_tilde_and_slash(client: TestClient, engine: Engine):
    response = client.post(
        "/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 1, "n~a/m": 1, "name": 2}
    )

    assert problem_of(response) == (
        BODY_INVALID.format(2),
        [
            {"detail": "'n~a/m' is not a property this operation takes.", "pointer": "/n~0a~1m"},
            {"detail": "'name' is not a property this operation takes.", "pointer": "/name"},
        ],
    )
    assert count_sessions(engine) == 0


def test_violations_are_listed_in_the_order_of_their_pointers_not_the_schemas(client: TestClient, engine: Engine):
    body = {"id": True, "group_id": "1", "study_activity_id": 1.5, "created_at": 12}

    assert problem_of(client.post("/api/v1/study-sessions", json=body)) == (
        BODY_INVALID.format(4),
        [
            {"detail": "12 is not of type 'string'", "pointer": "/created_at"},
            {"detail": "'1' is not of type 'integer'", "pointer": "/group_id"},
            {"detail": "True is not of type 'integer'", "pointer": "/id"},
            {"detail": "1.5 is not of type 'integer'", "pointer": "/study_activity_id"},
        ],
    )
    assert count_sessions(engine) == 0


def test_an_object_where_an_id_belongs_is_one_violation_of_that_property(client: TestClient, engine: Engine):
    response = client.post("/api/v1/study-sessions", json={"group_id": {"a": 1}, "study_activity_id": 1})

    assert problem_of(response) == (
        BODY_INVALID.format(1),
        [{"detail": "{'a': 1} is not of type 'integer'", "pointer": "/group_id"}],
    )
    assert count_sessions(engine) == 0


@pytest.mark.parametrize(
    ("query", "errors"),
    [
        ("sort=id&zz=1", [("sort", "'sort' is not a parameter this operation takes."),
                          ("zz", "'zz' is not a parameter this operation takes.")]),
        ("page=1&page=2&per_page=0", [("page", "It is given 2 times; send it once."),
                                      ("per_page", "0 is less than the minimum of 1")]),
        ("page=x&per_page=0", [("page", "'x' is not an integer."), ("per_page", "0 is less than the minimum of 1")]),
    ],
    ids=["unknown", "given twice", "not an integer"],
)  # fmt: skip
def test_every_bad_query_parameter_is_named_one_does_not_hide_the_next(
    client: TestClient, query: str, errors: list[tuple[str, str]]
):
    response = client.get(f"/api/v1/study-sessions?{query}")

    assert problem_of(response) == (
        PARAMETERS_INVALID.format(len(errors)),
        [{"detail": detail, "parameter": name} for name, detail in errors],
    )


def test_a_query_parameter_named_like_the_path_parameter_is_only_an_unknown_one(client: TestClient):
    response = client.get("/api/v1/study-sessions/1?id=1&id=2")

    assert problem_of(response) == (
        PARAMETERS_INVALID.format(1),
        [{"detail": "'id' is not a parameter this operation takes.", "parameter": "id"}],
    )
