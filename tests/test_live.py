"""Against the service started the way the README starts it (./scripts/dev run, ./scripts/dev fuzz),
on a free port: the Schemathesis CLI on both base paths, and the Python client package built from
the spec, installed into a fresh virtual environment."""

from __future__ import annotations

import json
import os
import subprocess
import venv
from pathlib import Path

import pytest
import yaml

from app import BASE_PATHS
from edge.security import digest
from tests.conftest import TEST_API_KEY
from tests.servers import BIN, DEV_RUN, ROOT, service

pytestmark = pytest.mark.live


def test_dev_fuzz_runs_the_schemathesis_cli_on_both_base_paths_and_finds_no_failure(tmp_path: Path, database_url: str):
    """`./scripts/dev fuzz` (README): the service with API keys, as production runs, and without
    rate limits; every default check and phase and ours, with the seed of schemathesis.toml."""
    result = subprocess.run(
        [ROOT / "scripts" / "dev", "fuzz"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": database_url, "FUZZ_REPORTS": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert result.stdout.count("Seed: 20261127") == len(BASE_PATHS)
    for base in BASE_PATHS:
        report = (tmp_path / f"fuzz{base.replace('/', '-')}.xml").read_text()
        assert 'failures="0"' in report and 'errors="0"' in report


# The planted loss is in the store's read, above the database: one backend proves that the run
# catches it (the run takes a minute), as the in-process runs prove it on both.
@pytest.mark.backends("sqlite")
def test_a_plain_schemathesis_run_in_the_project_folder_catches_a_created_session_that_cannot_be_read(
    tmp_path: Path, database_url: str
):
    lossy = (BIN / "python", "-m", "tests.planted.lossy_service")
    with service(tmp_path, database_url, lossy) as (url, _):  # open: no API_KEYS, as on a laptop
        result = subprocess.run(
            [BIN / "schemathesis", "run", f"{url}/api/v1/openapi.json"],
            cwd=ROOT,  # where schemathesis.toml is: its seed, checks and hooks
            capture_output=True,
            text=True,
            timeout=1200,
            check=False,
        )

    assert result.returncode != 0
    assert "Custom check failed: `created_sessions_are_readable`" in result.stdout, result.stdout[-8000:]


@pytest.mark.xdist_group("client_packages")
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
