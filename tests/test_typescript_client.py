"""The npm client package (the spec's types under openapi-fetch, built by ./scripts/dev client),
installed into a fresh npm project, drives the whole flow against the live service, run by Node:
create a session, post reviews, read the counts, read a 422 and a 404 problem. Where Node.js is
missing, ./scripts/dev test says SKIPPED for its Node steps, and so does this test."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from edge.security import digest
from tests.conftest import TEST_API_KEY
from tests.servers import ROOT, service

pytestmark = pytest.mark.live

FLOW = ROOT / "tests" / "typescript"
BIN = ROOT / "node_modules" / ".bin"


def run(folder: Path, *command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=folder, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.xdist_group("client_packages")
@pytest.mark.backends("sqlite")
def test_the_built_npm_client_package_drives_a_study_session_through_its_reviews(
    tmp_path: Path, database_url: str, client_packages: Path
):
    if shutil.which("node") is None or not (BIN / "tsc").exists():
        pytest.skip("Node.js (node and npm) is not installed here, so ./scripts/dev test did not set up its tools")
    (tarball,) = client_packages.glob("study-sessions-client-*.tgz")
    portal = tmp_path / "portal"
    portal.mkdir()
    (portal / "package.json").write_text(json.dumps({"name": "portal", "private": True, "type": "module"}))
    # openapi-fetch comes from npm's cache, which ./scripts/dev's `npm ci` filled, or else the registry.
    installed = run(portal, "npm", "install", "--prefer-offline", "--no-audit", "--no-fund", tarball)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    for name in ("flow.mts", "tsconfig.flow.json"):
        shutil.copyfile(FLOW / name, portal / name)
    built = run(portal, BIN / "tsc", "--project", "tsconfig.flow.json")
    assert built.returncode == 0, built.stdout + built.stderr

    with service(tmp_path, database_url, API_KEYS=digest(TEST_API_KEY)) as (url, _):
        flow = run(portal, "node", portal / "out" / "flow.mjs", f"{url}/api/v1", TEST_API_KEY)

    assert flow.returncode == 0, flow.stdout + flow.stderr
    seen = json.loads(flow.stdout)
    assert (seen["session"]["review_items_count"], seen["session"]["correct_count"]) == (3, 2)
    assert seen["problem"]["status"] == 422
    package = json.loads((portal / "node_modules" / "study-sessions-client" / "package.json").read_text())
    assert package["version"] == yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text())["info"]["version"]
