"""edge/connexion_internals.py reaches into Connexion; these fail loudly when Connexion changes
under it, and show that it does what it is for."""

from __future__ import annotations

import hashlib
import inspect
import pkgutil
from importlib.metadata import version
from typing import Any

import pytest
from connexion.decorators.main import BaseDecorator
from starlette.testclient import TestClient

from edge.connexion_internals import CONNEXION_VERSION, RELIED_ON
from edge.validation import Parameters


def test_connexion_is_the_version_the_internals_were_written_for():
    assert version("connexion") == CONNEXION_VERSION, "read edge/connexion_internals.py again, then update it"


@pytest.mark.parametrize("name", RELIED_ON)
def test_what_the_internals_rely_on_is_unchanged(name: str):
    found: Any = pkgutil.resolve_name(name)
    function: Any = found.fget if isinstance(found, property) else found

    digest = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]

    assert digest == RELIED_ON[name], f"{name} changed: read edge/connexion_internals.py again"


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
