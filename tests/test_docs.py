"""The docs site built from the spec (./scripts/dev docs), as the running service serves it."""

from __future__ import annotations

import json
import os
import re
import shutil
from importlib.machinery import SourceFileLoader
from pathlib import Path

import httpx
import pytest
import yaml
from sqlalchemy import Engine
from starlette.testclient import TestClient

from app import SPEC, create_app
from edge.settings import Settings
from tests.servers import ROOT, project_copy, service

BUILT = Path(__file__).resolve().parent.parent / "build" / "docs" / "index.html"


@pytest.fixture
def built_site() -> Path:
    if not BUILT.exists():
        if shutil.which("node") is None:
            pytest.skip("Node.js is not installed here, so ./scripts/dev test did not build the docs site")
        pytest.fail("build/docs/index.html is missing: ./scripts/dev test builds it before pytest runs")
    return BUILT


def test_the_service_serves_the_built_docs_site_at_docs(built_site: Path, settings: Settings, engine: Engine):
    with TestClient(create_app(Settings(**{**settings.__dict__, "docs_dir": built_site.parent}), engine)) as client:
        page = client.get("/docs")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.content == built_site.read_bytes()
    assert "cdn.redocly.com/redoc" not in page.text  # the Redoc scripts are inside: publishable as it is


def test_the_docs_show_every_operation_with_its_request_and_response_examples_and_every_error(built_site: Path):
    definition = re.search(r"const __redoc_definition = (\{.*?\});", built_site.read_text())
    assert definition is not None
    shown = json.loads(definition.group(1))

    spec = yaml.safe_load(SPEC.read_text())
    operation_ids = {op["operationId"] for item in spec["paths"].values() for op in item.values()}
    assert {op["operationId"] for item in shown["paths"].values() for op in item.values()} == operation_ids
    for path, item in shown["paths"].items():
        for method, operation in item.items():
            if "requestBody" in operation:
                assert operation["requestBody"]["content"]["application/json"]["examples"]
            for status, response in operation["responses"].items():
                name = response.get("$ref", "").rsplit("/", 1)[-1]
                resolved = shown["components"]["responses"][name] if name else response
                example = next(iter(resolved["content"].values()))["example"]
                if status >= "400":
                    assert example["status"] == int(status), f"{method} {path} {status}"


def test_docs_that_are_not_built_are_a_404_problem_saying_how_to_build_them(
    tmp_path: Path, settings: Settings, engine: Engine
):
    with TestClient(create_app(Settings(**{**settings.__dict__, "docs_dir": tmp_path}), engine)) as client:
        response = client.get("/docs")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "The docs site is not built here; run ./scripts/dev docs.",
    }


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_dev_run_rebuilds_a_docs_site_older_than_the_spec_quietly(built_site: Path, tmp_path: Path):
    # A copy of the project (its installs shared), so that tests running beside this one never
    # see the docs site out of date, nor half rebuilt.
    project = project_copy(tmp_path)
    # The shared install must be current first: the copy would otherwise redo it, pointing the
    # editable install at itself.
    dev = SourceFileLoader("dev", str(ROOT / "scripts" / "dev")).load_module()
    dev.ensure_python("")
    site = project / "build" / "docs" / "index.html"
    site.parent.mkdir(parents=True)
    shutil.copy2(built_site, site)
    hour_ago = (project / "openapi" / "openapi.yaml").stat().st_mtime - 3600
    os.utime(site, (hour_ago, hour_ago))

    dev_run = (project / "scripts" / "dev", "run")
    with service(tmp_path, f"sqlite:///{tmp_path}/study.db", dev_run) as (url, _server):
        page = httpx.get(f"{url}/docs")

    assert site.stat().st_mtime > (project / "openapi" / "openapi.yaml").stat().st_mtime
    assert page.status_code == 200 and page.content == site.read_bytes()
    (log,) = tmp_path.glob("server-*.log")
    assert "build-docs" in log.read_text()
    assert "is not expected here" not in log.read_text()  # a redocly.yaml with options it does not know
