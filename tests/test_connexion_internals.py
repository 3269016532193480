"""edge/connexion_internals.py reaches into Connexion; these fail loudly when Connexion changes
under it, and show that it does what it is for."""

from __future__ import annotations

import hashlib
import importlib
import inspect
from importlib.metadata import version

import pytest
from connexion.decorators.main import BaseDecorator
from starlette.testclient import TestClient

from edge.connexion_internals import CONNEXION_VERSION, RELIED_ON


def test_connexion_is_the_version_the_internals_were_written_for():
    assert version("connexion") == CONNEXION_VERSION, "read edge/connexion_internals.py again, then update it"


@pytest.mark.parametrize("name", RELIED_ON)
def test_what_the_internals_rely_on_is_unchanged(name: str):
    module, cls, attribute = name.rsplit(".", 2)
    found = inspect.getattr_static(getattr(importlib.import_module(module), cls), attribute)
    function = found.fget if isinstance(found, property) else found
    assert function is not None

    digest = hashlib.sha256(inspect.getsource(function).encode()).hexdigest()[:16]

    assert digest == RELIED_ON[name], f"{name} changed: read edge/connexion_internals.py again"


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
