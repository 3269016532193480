"""edge/connexion_internals.py reaches into Connexion; these fail loudly when Connexion changes
under it, and show that it does what it is for."""

from __future__ import annotations

import functools
import hashlib
import inspect
import pkgutil
import re
from importlib.metadata import version
from pathlib import Path
from typing import Any, NamedTuple

import connexion
import connexion.spec
import pytest
import yaml
from connexion.datastructures import NoContent
from connexion.decorators import parameter
from connexion.decorators.main import BaseDecorator
from connexion.decorators.response import BaseResponseDecorator
from connexion.exceptions import InvalidSpecification
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware.swagger_ui import SwaggerUIMiddleware
from connexion.operations import OpenAPIOperation
from sqlalchemy import Engine
from starlette.responses import Response
from starlette.testclient import TestClient

import handlers.operations
from app import SPEC, create_app
from edge import connexion_internals
from edge.connexion_internals import CONNEXION_VERSION, RELIED_ON, _Handler
from edge.resolver import BoundResolver
from edge.settings import Settings
from edge.validation import Parameters
from storage import migrate
from storage.engine import make_engine


def test_connexion_is_the_version_the_internals_were_written_for():
    assert version("connexion") == CONNEXION_VERSION, "read edge/connexion_internals.py again, then update it"


@pytest.mark.parametrize("name", RELIED_ON)
def test_what_the_internals_rely_on_is_unchanged(name: str):
    found: Any = pkgutil.resolve_name(name)
    function: Any = found.fget if isinstance(found, property) else found

    digest = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]

    assert digest == RELIED_ON[name], f"{name} changed: read edge/connexion_internals.py again"


def test_a_document_is_checked_against_the_openapi_schema_once_it_passes_and_every_time_it_fails(
    monkeypatch: pytest.MonkeyPatch,
):
    checks = []
    make_validator = connexion.spec.create_spec_validator

    def counted(spec: Any) -> Any:
        checks.append(spec)
        return make_validator(spec)

    monkeypatch.setattr(connexion.spec, "create_spec_validator", counted)
    document = yaml.safe_load(SPEC.read_text())
    document["info"]["title"] = "A document no other test loads"
    broken = yaml.safe_load(SPEC.read_text())
    broken["paths"]["/groups"]["get"]["responses"] = "none"

    for _ in range(2):
        connexion.spec.Specification.from_dict(yaml.safe_load(yaml.safe_dump(document)))
    assert len(checks) == 1
    for _ in range(2):
        with pytest.raises(InvalidSpecification):
            connexion.spec.Specification.from_dict(yaml.safe_load(yaml.safe_dump(broken)))
    assert len(checks) == 3


def test_request_validators_are_made_once_per_operation(client: TestClient, monkeypatch: pytest.MonkeyPatch):
    made = []
    init = Parameters.__init__

    def counted(self, *args, **kwargs):
        made.append(args)
        init(self, *args, **kwargs)

    first = [client.get("/api/v1/groups"), client.get("/api/v1/groups?per_page=x")]
    monkeypatch.setattr(Parameters, "__init__", counted)
    again = [client.get("/api/v1/groups"), client.get("/api/v1/groups?per_page=x")]

    assert [r.status_code for r in first] == [r.status_code for r in again] == [200, 400]
    assert again[1].json() == first[1].json()
    assert made == []


def test_handlers_are_decorated_at_start_up_not_per_request(client: TestClient, monkeypatch: pytest.MonkeyPatch):
    calls = []
    decorate = BaseDecorator.decorate

    def counted(self, function):
        calls.append(function)
        return decorate(self, function)

    monkeypatch.setattr(BaseDecorator, "decorate", counted)

    responses = [
        client.get("/api/v1/groups"),
        client.post("/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 1}),
    ]

    assert [r.status_code for r in responses] == [200, 201]
    assert calls == []


def test_handlers_arguments_are_worked_out_at_start_up_not_per_request(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    def requests() -> list[Any]:
        return [
            client.get("/api/v1/groups?per_page=1"),
            client.post("/api/v1/study-sessions", json={"group_id": 1, "study_activity_id": 1}),
            client.get("/api/study-sessions/1"),
            client.post("/api/v1/study-sessions/1/reviews", json={"word_id": 1, "correct": True}),
        ]

    first = requests()  # request validation makes each operation's validators on its first request
    calls = []

    def counted(owner: Any, name: str) -> None:
        original = getattr(owner, name)

        def count(*args, **kwargs):
            calls.append(name)
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, count)

    for name in ("inspect_function_arguments", "get_arguments", "prep_kwargs", "_get_query_defaults"):
        counted(parameter, name)
    for name in ("body_definition", "body_name"):
        counted(OpenAPIOperation, name)
    counted(ConnexionRequest, "files")
    counted(BaseResponseDecorator, "build_framework_response")

    again = requests()

    assert [r.status_code for r in first] == [r.status_code for r in again] == [200, 201, 200, 201]
    assert again[0].json()["per_page"] == 1
    assert again[2].json()["id"] == 1
    assert calls == []


Request = tuple[int, str, str, bytes, dict[str, str]]
"""The status expected, the method, path, body and headers."""


def served(settings: Settings, url: str, requests: list[Request]) -> tuple[list[Any], list[Any]]:
    """The answers to `requests` on a new database at `url`, and what each handler was called with."""
    settings = Settings(**{**settings.__dict__, "database_url": url, "validate_responses": False})
    engine = make_engine(url)
    migrate.upgrade(engine)
    migrate.seed(engine)
    engine.dispose()
    calls = []
    resolve = BoundResolver.resolve_function_from_operation_id

    def recording(self, operation_id):
        function = resolve(self, operation_id)

        @functools.wraps(function)
        async def recorded(**kwargs):
            calls.append((operation_id, {k: _argument(v) for k, v in kwargs.items()}))
            return await function(**kwargs)

        return recorded

    answers = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BoundResolver, "resolve_function_from_operation_id", recording)  # as the app starts
        with TestClient(create_app(settings), raise_server_exceptions=False) as client:
            for i, (_, method, path, body, headers) in enumerate(requests):
                r = client.request(method, path, content=body, headers={"X-Request-ID": f"r{i}", **headers})
                # when a review was made is now: not the same in the two apps
                content, made_now = NOW.subn(b"NOW", r.content)
                raw = [(k, b"N" if made_now and k == b"content-length" else v) for k, v in r.headers.raw]
                answers.append((r.status_code, raw, content))
    return answers, calls


NOW = re.compile(rb'"created_at": ?"(?!2026-01-02T03:04:05Z)[^"]*"')


def _argument(value: Any) -> Any:
    """What a handler got, comparable across two apps: the value and its type, or what it is."""
    if value is connexion.context.context:
        return "connexion.context.context"
    if isinstance(value, (int, str, float, dict, list, type(None))):
        return type(value), value
    return type(value)


@pytest.mark.backends("sqlite")
def test_handlers_get_what_connexions_decorators_give_them_and_answer_the_same(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    json_ = {"Content-Type": "application/json"}
    at = b'"created_at": "2026-01-02T03:04:05Z"'
    requests: list[Request] = [
        (201, "POST", "/api/v1/study-sessions", b'{"group_id": 1, "study_activity_id": 1, ' + at + b"}", json_),
        (201, "POST", "/api/study-sessions", b'{"id": 7, "group_id": 2, "study_activity_id": 1, ' + at + b"}", json_),
        (201, "POST", "/api/v1/study-sessions", b'{"group_id": 1, "study_activity_id": 2, ' + at + b"}",
         {**json_, "Idempotency-Key": "k-1"}),
        (422, "POST", "/api/v1/study-sessions", b'{"group_id": 999, "study_activity_id": 1, ' + at + b"}", json_),
        (200, "GET", "/api/v1/study-sessions/7", b"", {}),
        (404, "GET", "/api/study-sessions/99", b"", {}),
        (200, "GET", "/api/v1/study-sessions", b"", {}),
        (200, "GET", "/api/v1/study-sessions?page=2&per_page=1", b"", {}),
        (200, "GET", "/api/v1/groups?per_page=2", b"", {}),
        (200, "GET", "/api/v1/groups/1/words?page=1", b"", {}),
        (200, "GET", "/api/v1/study-activities", b"", {}),
        (201, "POST", "/api/v1/study-sessions/1/reviews", b'{"word_id": 1, "correct": true}', json_),
        (201, "POST", "/api/v1/study-sessions/1/reviews", b'{"word_id": 2, "correct": false}',
         {**json_, "Idempotency-Key": "r"}),
        (200, "GET", "/api/v1/study-sessions/1/reviews/1", b"", {}),
        (200, "GET", "/api/v1/study-sessions/1/reviews?per_page=5", b"", {}),
        (200, "GET", "/api/v1/healthz", b"", {}),
        (200, "GET", "/api/v1/readyz", b"", {}),
    ]  # fmt: skip

    lean = served(settings, f"sqlite:///{tmp_path}/lean.db", requests)

    async def connexions_decorators(self, request, scope):
        return None  # _Handler hands every request to Connexion's own decorators

    monkeypatch.setattr(_Handler, "_kwargs", connexions_decorators)
    connexion_ = served(settings, f"sqlite:///{tmp_path}/connexion.db", requests)

    assert [a[0] for a in lean[0]] == [r[0] for r in requests]
    assert lean[0] == connexion_[0]
    assert len(lean[1]) == len(requests)
    assert lean[1] == connexion_[1]


class Answer(NamedTuple):
    """A handler's (body, status, headers), as a tuple of a type of its own."""

    body: Any
    status: int
    headers: dict[str, str]


ANSWERS = [
    ({"status": "ok"}, 200, {"Content-Type": "application/json"}),
    ({"status": "ok"}, 203, {"content-type": "application/json", "X-Extra": "1"}),
    ({"status": "ok"}, None, {"X-Extra": "1", "Content-Type": "application/json"}),
    ({"status": "ok"}, 200, {"Content-Type": "application/problem+json"}),
    ({"status": "ok"}, 200, {}),
    ({"status": "ok"}, 200, {"Content-Type": "text/html"}),
    ({"status": "ok"}, 200, {"Content-Type": ""}),
    ({"status": "ok"}, 200, {b"content-type": b"application/json"}),
    ({"status": "ok"}, 200, [("Content-Type", "application/json")]),
    ({"status": "ok"}, 200),
    ({"status": "ok"},),
    {"status": "ok"},
    (None, 200, {"Content-Type": "application/json"}),
    (NoContent, 204, {"Content-Type": "application/json"}),
    (["ü", 1.5], 200, {"Content-Type": "application/json"}),
    ("ü", 200, {"Content-Type": "application/json"}),
    (b"{}", 200, {"Content-Type": "application/json"}),
    (Response(b"x", 202, media_type="text/plain"), 200, {"Content-Type": "application/json"}),
    Response(b"x", 202, media_type="text/plain"),
    ConnexionResponse(202, body=b"{}", content_type="application/json"),
    Answer({"status": "ü"}, 200, {"Content-Type": "application/json"}),
]
"""What handlers may answer, this service's answers (the first three) and others."""


@pytest.mark.backends("sqlite")
def test_a_handlers_answer_is_the_response_connexions_decorators_make_of_it(
    settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
):
    answering = iter(answer for answer in ANSWERS for _ in range(2))

    async def get_health():
        return next(answering)

    monkeypatch.setattr(handlers.operations, "get_health", get_health)
    lean_kwargs = _Handler._kwargs

    async def connexions_decorators(self, request, scope):
        return None

    responses: dict[str, list] = {"lean": [], "connexion": []}
    settings = Settings(**{**settings.__dict__, "validate_responses": False})
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        for i in range(len(ANSWERS)):
            for way, kwargs in (("lean", lean_kwargs), ("connexion", connexions_decorators)):
                monkeypatch.setattr(_Handler, "_kwargs", kwargs)
                r = client.get("/api/v1/healthz", headers={"X-Request-ID": f"r{i}"})
                responses[way].append((r.status_code, r.headers.raw, r.content))

    # a content type the operation does not answer in, or none where it answers in two, or a body
    # JSON cannot hold, is Connexion's 500
    statuses = [200, 203, 200, 200, 500, 500, 500, 500, 500, 500, 500, 500, 200, 204, 200, 200, 500, 500, 202, 202, 200]
    assert [r[0] for r in responses["lean"]] == statuses
    assert responses["lean"] == responses["connexion"]


SWAGGER_UI_AND_NEIGHBOURS = [
    "/api/v1",
    "/api",
    "/api/v1/",
    "/api/v1/openapi.json",
    "/api/v1/openapi.json/",
    "/api/openapi.yaml",
    "/api/v1/ui",
    "/api/v1/ui/",
    "/api/ui/swagger-ui-config.json",
    "/api/v1/ui/swagger-ui.css",
    "/api/v1/ui/nothing-here.js",
    "/api/v1/uix",
    "/api/v1/groups",
    "/api/v1/groups/",
    "/api/groups?per_page=x",
    "/api/v1/study-sessions/1",
    "/healthz",
    "/docs",
    "/nowhere",
    "/",
]


def every_answer(settings: Settings, paths: list[str]) -> list[tuple[int, list[tuple[bytes, bytes]], bytes]]:
    with TestClient(create_app(settings), raise_server_exceptions=False, follow_redirects=False) as client:
        answers = [client.get(path, headers={"X-Request-ID": f"r{i}"}) for i, path in enumerate(paths)]
    return [(r.status_code, r.headers.raw, r.content) for r in answers]


@pytest.mark.backends("sqlite")
def test_swagger_ui_gets_only_the_requests_it_can_answer_and_every_answer_is_connexions(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    routed = []
    route = SwaggerUIMiddleware.__call__

    async def counted(self: SwaggerUIMiddleware, scope: Any, receive: Any, send: Any) -> None:
        routed.append(scope.get("path", ""))
        await route(self, scope, receive, send)

    monkeypatch.setattr(SwaggerUIMiddleware, "__call__", counted)
    ours = every_answer(settings, SWAGGER_UI_AND_NEIGHBOURS)
    sent_to_swagger_ui = [path for path in routed if path.startswith("/api")]
    routed.clear()
    monkeypatch.setattr(connexion_internals, "_SwaggerUI", SwaggerUIMiddleware)  # Connexion's own
    connexions = every_answer(settings, SWAGGER_UI_AND_NEIGHBOURS)

    assert ours == connexions
    assert [status for status, _, _ in ours][:12] == [404, 307, 404, 200, 307, 200, 307, 200, 404, 200, 404, 404]
    assert sent_to_swagger_ui == [p for p in SWAGGER_UI_AND_NEIGHBOURS[:12] if p != "/api/v1/"]
