"""The breaking-change gate (scripts/compat.py, `./scripts/dev compat`): kinds of break planted in a
copy of the spec fail it, each named; additive changes pass and ask for a minor version bump."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import BIN, ROOT

# Each test runs the gate: a changed spec costs an optic diff, some 12 s of CPU. One xdist worker
# takes them all, so that the tests of every_break_at_once share its one run.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("compat")]

RELEASED = ROOT / "openapi" / "released"
SPEC = ROOT / "openapi" / "openapi.yaml"
Spec = dict[str, Any]


@pytest.fixture(scope="session")
def optic() -> None:
    """Optic, as ./scripts/dev test sets it up; skipped where Node.js is absent, outside CI."""
    if shutil.which("node") is None or not (ROOT / "node_modules" / ".bin" / "optic").exists():
        if os.environ.get("CI"):
            pytest.fail("optic is needed in CI: ./scripts/dev test sets it up with Node.js (node and npm)")
        pytest.skip("Node.js (node and npm) is not installed here, so ./scripts/dev test did not set up optic")


needs_optic = pytest.mark.usefixtures("optic")


def releases() -> list[Path]:
    """The released specs, oldest first."""
    return sorted(RELEASED.glob("*.yaml"), key=lambda path: tuple(int(part) for part in path.stem.split(".")))


def latest_release() -> Spec:
    spec: Spec = yaml.safe_load(releases()[-1].read_text())
    return spec


def gate(tmp_path: Path, working: Spec, released: Spec | None = None) -> subprocess.CompletedProcess[str]:
    """The gate's answer for `working` against `released` (the latest release unless given)."""
    folder = tmp_path / "released"
    folder.mkdir()
    base = released or latest_release()
    (folder / f"{base['info']['version']}.yaml").write_text(yaml.safe_dump(base, sort_keys=False))
    spec = tmp_path / "openapi.yaml"
    spec.write_text(yaml.safe_dump(working, sort_keys=False))
    return subprocess.run(
        [BIN / "python", "scripts/compat.py", "--spec", spec, "--released", folder],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def schemas(spec: Spec) -> dict[str, Any]:
    found: dict[str, Any] = spec["components"]["schemas"]
    return found


def with_mode(*values: str) -> Callable[[Spec], None]:
    """A plant: an optional `mode` on a review, taking `values`."""

    def plant(spec: Spec) -> None:
        schemas(spec)["ReviewCreate"]["properties"]["mode"] = {"type": "string", "enum": list(values)}

    return plant


def remove_operation(spec: Spec) -> None:
    del spec["paths"]["/study-sessions"]["get"]


def remove_path(spec: Spec) -> None:
    del spec["paths"]["/groups/{id}/words"]


def remove_response_field(spec: Spec) -> None:
    session = schemas(spec)["StudySession"]
    del session["properties"]["wrong_count"]
    session["required"].remove("wrong_count")


def require_new_request_property(spec: Spec) -> None:
    review = schemas(spec)["ReviewCreate"]
    review["properties"]["mode"] = {"type": "string", "maxLength": 20}
    review["required"].append("mode")


def require_new_parameter(spec: Spec) -> None:
    language = {"name": "lang", "in": "query", "required": True, "schema": {"type": "string", "maxLength": 5}}
    spec["paths"]["/groups"]["get"]["parameters"].append(language)


def require_optional_parameter(spec: Spec) -> None:
    spec["components"]["parameters"]["PerPage"]["required"] = True


def narrow_type(spec: Spec) -> None:
    schemas(spec)["ReviewCreate"]["properties"]["correct"] = {"type": "integer", "description": "1 if right."}


def narrow_bound(spec: Spec) -> None:
    spec["components"]["parameters"]["PerPage"]["schema"]["maximum"] = 50


def widen_response_bound(spec: Spec) -> None:
    schemas(spec)["StudySession"]["properties"]["group_name"]["maxLength"] = 500


def remove_status_code(spec: Spec) -> None:
    del spec["paths"]["/study-sessions/{id}"]["get"]["responses"]["404"]


def remove_response_header(spec: Spec) -> None:
    del spec["paths"]["/study-sessions"]["post"]["responses"]["201"]["headers"]["Location"]


def serve_only_under_the_alias(spec: Spec) -> None:
    spec["servers"][0]["url"] = "/api"


BREAKS = [
    (remove_operation, "GET /api/v1/study-sessions: [prevent operation removal]"),
    (remove_path, "GET /api/v1/groups/{id}/words: [prevent operation removal]"),
    (remove_response_field, "[prevent removing response property] cannot remove response property 'wrong_count'"),
    (require_new_request_property, "[prevent changing request property to required]"),
    (require_new_parameter, "GET /api/v1/groups: [prevent new required query parameters]"),
    (require_optional_parameter, "GET /api/v1/groups: [prevent requiring existing query parameters]"),
    (narrow_type, "POST /api/v1/study-sessions/{id}/reviews: [prevent request property type changes]"),
    (narrow_bound, "GET /api/v1/groups: query parameter per_page: [request bound narrowed] maximum 100 -> 50"),
    (widen_response_bound, "application/json.group_name: [response bound widened] maxLength 200 -> 500"),
    (remove_status_code, "GET /api/v1/study-sessions/{id}: [prevent response status code removal]"),
    (remove_response_header, "POST /api/v1/study-sessions: [response header removed] 201 Location"),
]  # fmt: skip
"""Breaks planted together in one copy of the spec, each with what the gate must name: one run of
the gate (optic's diff is some 12 s of CPU) instead of one each."""


@pytest.fixture(scope="module")
def every_break_at_once(optic: None, tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    working = copy.deepcopy(latest_release())
    for plant, _ in BREAKS:
        plant(working)
    return gate(tmp_path_factory.mktemp("breaks"), working)


def named_as_a_break(result: subprocess.CompletedProcess[str], named: str) -> bool:
    lines = result.stdout.splitlines()
    return any(line.startswith("  BREAKING ") and named in line for line in lines)


@pytest.mark.parametrize("named", [pytest.param(named, id=plant.__name__) for plant, named in BREAKS])
def test_a_breaking_change_to_api_v1_fails_the_gate_naming_it(
    every_break_at_once: subprocess.CompletedProcess[str], named: str
):
    result = every_break_at_once

    assert result.returncode == 1, result.stdout + result.stderr
    assert "breaking change(s) for clients of /api/v1" in result.stdout
    assert named_as_a_break(result, named), result.stdout


@needs_optic
def test_serving_only_under_the_alias_fails_the_gate_naming_each_operation_of_api_v1(tmp_path: Path):
    working = copy.deepcopy(latest_release())
    serve_only_under_the_alias(working)

    result = gate(tmp_path, working)

    assert result.returncode == 1, result.stdout + result.stderr
    assert named_as_a_break(result, "POST /api/v1/study-sessions: [prevent operation removal]"), result.stdout
    assert named_as_a_break(result, "GET /api/v1/groups: [prevent operation removal]"), result.stdout


@needs_optic
def test_a_removed_enum_value_fails_the_gate_naming_it(tmp_path: Path):
    released, working = copy.deepcopy(latest_release()), copy.deepcopy(latest_release())
    with_mode("quiz", "drill")(released)
    with_mode("quiz")(working)

    result = gate(tmp_path, working, released)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "[request and response property enums] cannot remove enum option 'drill'" in result.stdout


def add_optional_request_property(spec: Spec) -> None:
    schemas(spec)["ReviewCreate"]["properties"]["note"] = {"type": "string", "maxLength": 200}


def add_optional_response_property(spec: Spec) -> None:
    schemas(spec)["StudySession"]["properties"]["note"] = {"type": "string", "maxLength": 200}


def add_operation(spec: Spec) -> None:
    one_group = copy.deepcopy(spec["paths"]["/study-sessions/{id}"])
    one_group["get"]["operationId"] = "get_group"
    spec["paths"]["/groups/{id}"] = one_group


def add_response_header(spec: Spec) -> None:
    header = {"description": "How old the answer is.", "schema": {"type": "integer", "maximum": 86400}}
    spec["paths"]["/study-sessions/{id}"]["get"]["responses"]["200"]["headers"]["Age"] = header


def also_serve_under_another_alias(spec: Spec) -> None:
    spec["servers"].append({"url": "/api/latest"})


def name_the_server_by_its_full_url(spec: Spec) -> None:
    spec["servers"][0]["url"] = "https://study.example.org/api/v1"


ADDITIONS = [
    add_optional_request_property,
    add_optional_response_property,
    add_operation,
    add_response_header,
    also_serve_under_another_alias,
    name_the_server_by_its_full_url,
]
"""Compatible changes, planted together in one copy of the spec: one run of the gate, which would
name any of them it took for a break."""


@needs_optic
def test_additive_changes_pass_and_ask_for_a_minor_version_bump(tmp_path: Path):
    working = copy.deepcopy(latest_release())
    for plant in ADDITIONS:
        plant(working)
    released = working["info"]["version"]

    result = gate(tmp_path, working)

    assert result.returncode == 0, result.stdout + result.stderr
    major, minor, _ = (int(part) for part in released.split("."))
    assert f"a minor version bump is due ({major}.{minor + 1}.0)" in result.stdout
    assert f"NOTE: info.version is still {released} although the spec changed" in result.stdout


@needs_optic
def test_an_additive_change_with_its_version_bumped_passes_and_says_it_is_not_released_yet(tmp_path: Path):
    working = copy.deepcopy(latest_release())
    add_operation(working)
    major, minor, _ = (int(part) for part in working["info"]["version"].split("."))
    working["info"]["version"] = f"{major}.{minor + 1}.0"

    result = gate(tmp_path, working)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"NOTE: {major}.{minor + 1}.0 is not released yet" in result.stdout


def test_an_unchanged_spec_passes_with_no_bump_due(tmp_path: Path):
    result = gate(tmp_path, copy.deepcopy(latest_release()))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no version bump is due" in result.stdout


@pytest.mark.parametrize("version", ["0.9.0", "1.0", "v1.1.0"])
def test_an_info_version_older_than_the_release_or_not_semantic_fails_the_gate(tmp_path: Path, version: str):
    working = copy.deepcopy(latest_release())
    working["info"]["version"] = version

    result = gate(tmp_path, working)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAILED: info.version" in result.stdout


def test_each_released_spec_is_named_for_its_info_version_and_the_latest_is_the_working_ones_base():
    assert releases(), "no released spec in openapi/released/"
    for release in releases():
        assert yaml.safe_load(release.read_text())["info"]["version"] == release.stem
    working = yaml.safe_load(SPEC.read_text())["info"]["version"]
    assert tuple(map(int, working.split("."))) >= tuple(map(int, releases()[-1].stem.split(".")))
