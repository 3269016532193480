"""Settings from the environment, as the README's Settings table documents them."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from edge.security import digest
from edge.settings import Settings
from tests.conftest import TEST_API_KEY
from tests.servers import GUNICORN, ROOT, service

SWITCHES = {"VALIDATE_RESPONSES": "validate_responses", "READS_NEED_API_KEY": "reads_need_api_key"}
ON = ["1", "true", "True", "TRUE", "yes", "Yes", "on", "ON", " 1 "]
OFF = ["0", "false", "False", "no", "NO", "off", "Off", ""]


def readme_settings() -> set[str]:
    settings = ROOT.joinpath("README.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(\w+)` \|", settings, re.MULTILINE))


def test_every_setting_the_readme_lists_is_read_from_the_environment():
    given = {
        "DATABASE_URL": ("postgresql+psycopg://u@db:5432/s", "database_url", "postgresql+psycopg://u@db:5432/s"),
        "HOST": ("0.0.0.0", "host", "0.0.0.0"),
        "PORT": ("8123", "port", 8123),
        "CORS_ORIGINS": (
            "https://a.example, https://b.example",
            "cors_origins",
            ("https://a.example", "https://b.example"),
        ),
        "LOG_LEVEL": ("debug", "log_level", "DEBUG"),
        "DB_TIMEOUT": ("2.5", "db_timeout", 2.5),
        "DB_POOL_SIZE": ("7", "db_pool_size", 7),
        "VALIDATE_RESPONSES": ("1", "validate_responses", True),
        "WORKERS": ("3", "workers", 3),
        "WORKER_TIMEOUT": ("45", "worker_timeout", 45.0),
        "GRACEFUL_TIMEOUT": ("9", "graceful_timeout", 9.0),
        "API_KEYS": (digest("k"), "api_keys", frozenset({digest("k")})),
        "READS_NEED_API_KEY": ("1", "reads_need_api_key", True),
        "RATE_LIMIT_WRITE": ("7/second", "rate_limit_write", "7/second"),
        "RATE_LIMIT_READ": ("off", "rate_limit_read", "off"),
        "REDIS_URL": ("redis://r:6379/0", "redis_url", "redis://r:6379/0"),
        "FORWARDED_ALLOW_IPS": ("10.0.0.1", "forwarded_allow_ips", "10.0.0.1"),
        "MAX_CONNECTIONS": ("64", "max_connections", 64),
    }
    # The one the service does not read itself: edge/serving.py hands it to prometheus_client.
    assert readme_settings() == {*given, "PROMETHEUS_MULTIPROC_DIR"}

    settings = Settings.from_env({name: value for name, (value, _, _) in given.items()})

    assert {name: getattr(settings, field) for name, (_, field, _) in given.items()} == {
        name: expected for name, (_, _, expected) in given.items()
    }
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize("name", SWITCHES)
@pytest.mark.parametrize(("value", "on"), [*((v, True) for v in ON), *((v, False) for v in OFF)])
def test_a_switch_takes_every_spelling_the_readme_gives(name: str, value: str, on: bool):
    assert getattr(Settings.from_env({name: value}), SWITCHES[name]) is on
    assert getattr(Settings.from_env({}), SWITCHES[name]) is False


@pytest.mark.parametrize("name", SWITCHES)
@pytest.mark.parametrize("value", ["2", "enabled", "y", "tru"])
def test_a_switch_spelt_some_other_way_stops_the_service_naming_it(name: str, value: str):
    with pytest.raises(ValueError, match=f"^{name} is '{value}'"):
        Settings.from_env({name: value})


@pytest.mark.live
@pytest.mark.backends("sqlite")
def test_a_started_service_reads_reads_need_api_key_from_its_environment(tmp_path: Path, database_url: str):
    env = {"API_KEYS": digest(TEST_API_KEY), "READS_NEED_API_KEY": "1", "WORKERS": "1"}
    with service(tmp_path, database_url, GUNICORN, **env) as (url, _):
        without = httpx.get(f"{url}/api/v1/groups")
        keyed = httpx.get(f"{url}/api/v1/groups", headers={"X-API-Key": TEST_API_KEY})

    assert without.status_code == 401 and without.headers["www-authenticate"] == 'ApiKey header="X-API-Key"'
    assert keyed.status_code == 200


def test_a_postgresql_url_without_a_driver_is_served_by_psycopg():
    # SQLAlchemy's default for postgresql:// is psycopg2, which the service does not install.
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u:p@db:5432/s"})

    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/s"


@pytest.mark.parametrize(
    "url", ["redis://r:6379/0", "rediss://r:6380/0", "redis+unix:///run/redis.sock", "async+redis://r:6379"]
)
def test_every_redis_url_the_limits_library_reaches_is_taken(url: str):
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url
