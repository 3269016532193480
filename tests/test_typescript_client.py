"""A TypeScript client (openapi-fetch over the types generated from the spec) drives the whole flow
against the live service, run by Node: create a session, post reviews, read the counts, read a
problem. Where Node.js is missing, ./scripts/dev test says SKIPPED for its Node steps, and so
does this test."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.security import digest
from tests.conftest import TEST_API_KEY
from tests.servers import ROOT, service

pytestmark = pytest.mark.live

TYPES = ROOT / "build" / "clients" / "typescript" / "schema.d.ts"
BIN = ROOT / "node_modules" / ".bin"


def run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.backends("sqlite")
def test_a_typescript_client_drives_a_study_session_through_its_reviews(tmp_path: Path, database_url: str):
    if shutil.which("node") is None or not (BIN / "tsc").exists():
        pytest.skip("Node.js (node and npm) is not installed here, so ./scripts/dev test did not set up its tools")
    types = run(BIN / "openapi-typescript", "openapi/openapi.yaml", "--output", TYPES)
    built = run(BIN / "tsc", "--project", "tests/typescript/tsconfig.flow.json")
    assert types.returncode == 0 and built.returncode == 0, types.stdout + types.stderr + built.stdout + built.stderr

    with service(tmp_path, database_url, API_KEYS=digest(TEST_API_KEY)) as (url, _):
        flow = run("node", ROOT / "build" / "ts" / "flow.mjs", f"{url}/api/v1", TEST_API_KEY)

    assert flow.returncode == 0, flow.stdout + flow.stderr
    seen = json.loads(flow.stdout)
    assert (seen["session"]["review_items_count"], seen["session"]["correct_count"]) == (3, 2)
    assert seen["problem"]["status"] == 422
