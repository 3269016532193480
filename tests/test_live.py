"""Against the service started the way the README starts it (./scripts/dev run), on a free port:
the Schemathesis CLI on both base paths, and the Python client package built from the spec, installed
into a fresh virtual environment."""

from __future__ import annotations

import json
import subprocess
import venv
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from app import BASE_PATHS
from edge.security import digest
from tests.conftest import TEST_API_KEY
from tests.servers import BIN, DEV_RUN, ROOT, service

REPORTS = ROOT / "build" / "reports"

pytestmark = pytest.mark.live


@pytest.fixture
def live_url(tmp_path: Path, database_url: str) -> Iterator[str]:
    """The service as the README starts it, with API keys as production runs (the Schemathesis
    CLI takes the key from STUDY_SESSIONS_API_KEY, which tests/conftest.py sets)."""
    with service(tmp_path, database_url, API_KEYS=digest(TEST_API_KEY)) as (url, _):
        yield url


def schemathesis_cli(url: str, report: Path) -> subprocess.CompletedProcess[str]:
    """Every default check and phase, and ours (tests/contract_checks.py), with the seed and
    settings of schemathesis.toml (found in ROOT)."""
    report.unlink(missing_ok=True)
    return subprocess.run(
        [BIN / "schemathesis", "run", f"{url}/openapi.json", "--report", "junit", "--report-junit-path", report],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


@pytest.mark.parametrize("base", BASE_PATHS)
def test_the_schemathesis_cli_finds_no_failure_on_the_live_service(live_url: str, base: str, backend: str):
    report = REPORTS / f"schemathesis{base.replace('/', '-')}-{backend}.xml"

    result = schemathesis_cli(f"{live_url}{base}", report)

    assert result.returncode == 0, result.stdout[-8000:]
    assert "Seed: 20261127" in result.stdout
    assert 'failures="0"' in report.read_text() and 'errors="0"' in report.read_text()


def test_the_schemathesis_cli_catches_a_created_session_that_cannot_be_read(tmp_path: Path, database_url: str):
    lossy = (BIN / "python", "-m", "tests.planted.lossy_service")
    with service(tmp_path, database_url, lossy, API_KEYS=digest(TEST_API_KEY)) as (url, _):
        result = schemathesis_cli(f"{url}/api/v1", tmp_path / "report.xml")

    assert result.returncode != 0
    assert "Custom check failed: `created_sessions_are_readable`" in result.stdout, result.stdout[-8000:]


@pytest.mark.backends("sqlite")
def test_the_built_python_client_package_drives_the_live_service(
    tmp_path: Path, database_url: str, client_packages: Path
):
    (client_wheel,) = client_packages.glob("study_sessions_client-*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    pip: list[str | Path] = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    installed = subprocess.run(
        [*pip, "-c", ROOT / "constraints.txt", client_wheel], capture_output=True, text=True, timeout=600, check=False
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    limits = {"API_KEYS": digest(TEST_API_KEY), "RATE_LIMIT_WRITE": "7/minute"}
    with service(tmp_path, database_url, DEV_RUN, **limits) as (live_url, _):
        flow = subprocess.run(
            [python, ROOT / "tests" / "client_flow.py", f"{live_url}/api/v1", TEST_API_KEY],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    assert flow.returncode == 0, flow.stdout + flow.stderr
    seen = json.loads(flow.stdout.splitlines()[-1])
    assert Path(seen["module"]).is_relative_to(tmp_path / "venv"), "the client was not imported from the wheel"
    assert seen["version"] == yaml.safe_load((ROOT / "openapi" / "openapi.yaml").read_text())["info"]["version"]
