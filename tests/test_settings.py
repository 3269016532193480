"""Settings from the environment, as the README's Settings table documents them."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import httpx
import pytest

from edge.security import digest
from edge.settings import BadSettings, Settings, settings_or_exit
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


def test_a_postgres_url_without_a_driver_is_served_by_psycopg():
    # SQLAlchemy's default for postgresql:// is psycopg2, which the service does not install.
    settings = Settings.from_env({"DATABASE_URL": "postgresql://u:p@db:5432/s"})

    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/s"


@pytest.mark.parametrize(
    "url", ["redis://r:6379/0", "rediss://r:6380/0", "redis+unix:///run/redis.sock", "async+redis://r:6379"]
)
def test_every_redis_url_the_limits_library_reaches_is_taken(url: str):
    assert Settings.from_env({"REDIS_URL": url}).redis_url == url


def problems(env: dict[str, str]) -> list[str]:
    with pytest.raises(BadSettings) as raised:
        Settings.from_env(env)
    return raised.value.problems


WHOLE = "it takes a whole number from"
SECONDS = "it takes a number of seconds,"
WRONG = [
    ("HOST", " ", "HOST is ' ': it takes a value that is not empty."),
    ("PORT", "abc", f"PORT is 'abc': {WHOLE} 1 to 65535."),
    ("PORT", "0", f"PORT is '0': {WHOLE} 1 to 65535."),
    ("PORT", "65536", f"PORT is '65536': {WHOLE} 1 to 65535."),
    ("DB_POOL_SIZE", "1001", f"DB_POOL_SIZE is '1001': {WHOLE} 1 to 1000."),
    ("WORKERS", "0", f"WORKERS is '0': {WHOLE} 1 to 1000."),
    ("MAX_CONNECTIONS", "1000001", f"MAX_CONNECTIONS is '1000001': {WHOLE} 1 to 1000000."),
    ("DB_TIMEOUT", "soon", f"DB_TIMEOUT is 'soon': {SECONDS} 0.001 or more (such as 5 or 0.5)."),
    ("DB_TIMEOUT", "inf", f"DB_TIMEOUT is 'inf': {SECONDS} 0.001 or more (such as 5 or 0.5)."),
    ("WORKER_TIMEOUT", "0.5", f"WORKER_TIMEOUT is '0.5': {SECONDS} 1 or more (such as 5 or 0.5)."),
    ("GRACEFUL_TIMEOUT", "-1", f"GRACEFUL_TIMEOUT is '-1': {SECONDS} 0 or more (such as 5 or 0.5)."),
    (
        "VALIDATE_RESPONSES",
        "y",
        "VALIDATE_RESPONSES is 'y': it takes 1 (or true, yes, on) or 0 (or false, no, off, or unset).",
    ),
    ("LOG_LEVEL", "verbose", "LOG_LEVEL is 'verbose': it takes one of DEBUG, INFO, WARNING, ERROR, CRITICAL."),
    (
        "DATABASE_URL",
        "not a url",
        "DATABASE_URL is 'not a url': it takes an SQLAlchemy URL of SQLite or PostgreSQL"
        " (sqlite:///path or postgresql+psycopg://...).",
    ),
    (
        "DATABASE_URL",
        "mysql://study:hunter2@db/study",
        "DATABASE_URL is 'mysql://study:***@db/study': it takes an SQLAlchemy URL of SQLite or PostgreSQL"
        " (sqlite:///path or postgresql+psycopg://...).",
    ),
    *(
        (
            "DATABASE_URL",
            memory,
            f"DATABASE_URL is {memory!r}: it takes a SQLite file (sqlite:///path), not memory,"
            " where each connection has a database of its own.",
        )
        for memory in (
            "sqlite://",
            "sqlite:///:memory:",
            "sqlite+pysqlite:///file::memory:?cache=shared&uri=true",
            "sqlite:///file:study?mode=memory&uri=true",
        )
    ),
    (
        "CORS_ORIGINS",
        "https://a.example/app",
        "CORS_ORIGINS is 'https://a.example/app': it takes comma-separated origins,"
        " each scheme://host[:port] with no path (or *).",
    ),
    (
        "RATE_LIMIT_WRITE",
        "lots",
        "RATE_LIMIT_WRITE is 'lots': it takes a rate in the limits notation (30/minute, 5/second, 1000/hour) or off.",
    ),
    (
        "REDIS_URL",
        "http://cache:hunter2@r:6379/0",
        "REDIS_URL is 'http://cache:***@r:6379/0': it takes a Redis URL"
        " (redis://host:6379/0, rediss://..., redis+unix:///path) or nothing.",
    ),
    (
        "FORWARDED_ALLOW_IPS",
        "*, the-proxy",
        "FORWARDED_ALLOW_IPS is '*, the-proxy': it takes comma-separated IP addresses or networks"
        " (10.0.0.1, 10.0.0.0/8), or *.",
    ),
    (
        "API_KEYS",
        f"{digest('k')}, {'g' * 64}, abc",
        "API_KEYS is (not shown: it may hold a secret): it takes SHA-256 hex digests (64 hex digits each),"
        " comma-separated; 2 value(s) are not.",
    ),
]


@pytest.mark.parametrize(("name", "value", "line"), WRONG, ids=[f"{w[0]}={w[1][:12]}" for w in WRONG])
def test_a_wrong_value_is_one_line_naming_the_variable_its_value_and_what_it_takes(name: str, value: str, line: str):
    assert problems({name: value}) == [line]


KEY, OTHER_KEY = digest("k"), digest("other")
EDGES = [
    ("PORT", "1", "port", 1),
    ("PORT", "65535", "port", 65535),
    ("DB_POOL_SIZE", "1", "db_pool_size", 1),
    ("DB_POOL_SIZE", "1000", "db_pool_size", 1000),
    ("WORKERS", "1", "workers", 1),
    ("WORKERS", "1000", "workers", 1000),
    ("MAX_CONNECTIONS", "1", "max_connections", 1),
    ("MAX_CONNECTIONS", "1000000", "max_connections", 1_000_000),
    ("DB_TIMEOUT", "0.001", "db_timeout", 0.001),
    ("WORKER_TIMEOUT", "1", "worker_timeout", 1.0),
    ("GRACEFUL_TIMEOUT", "0", "graceful_timeout", 0.0),
    ("DATABASE_URL", " sqlite+pysqlite:///var/s.db ", "database_url", "sqlite+pysqlite:///var/s.db"),
    # kept as written (not as SQLAlchemy renders it), as the log line of a failed start shows it
    (
        "DATABASE_URL",
        "sqlite:///var/a%20b.db?uri=true&mode=ro",
        "database_url",
        "sqlite:///var/a%20b.db?uri=true&mode=ro",
    ),
    ("CORS_ORIGINS", "*", "cors_origins", ("*",)),
    ("FORWARDED_ALLOW_IPS", "*", "forwarded_allow_ips", "*"),
    (
        "FORWARDED_ALLOW_IPS",
        "10.0.0.1, 10.0.0.0/8,10.1.2.3/8",
        "forwarded_allow_ips",
        "10.0.0.1, 10.0.0.0/8,10.1.2.3/8",
    ),
    ("API_KEYS", f"{KEY}, {OTHER_KEY.upper()}", "api_keys", frozenset({KEY, OTHER_KEY})),
]


@pytest.mark.parametrize(("name", "value", "field", "taken"), EDGES, ids=[f"{e[0]}={e[1][:12]}" for e in EDGES])
def test_the_edges_of_what_each_setting_takes_are_taken(name: str, value: str, field: str, taken: object):
    assert getattr(Settings.from_env({name: value}), field) == taken


def test_with_no_mapping_given_the_settings_are_the_process_environments(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PORT", "8123")

    assert Settings.from_env().port == 8123


def test_every_wrong_variable_is_named_at_once_one_line_each():
    with pytest.raises(BadSettings) as raised:
        Settings.from_env({"PORT": "abc", "HOST": ""})

    lines = ["HOST is '': it takes a value that is not empty.", f"PORT is 'abc': {WHOLE} 1 to 65535."]
    assert raised.value.problems == lines
    assert str(raised.value) == "\n".join(lines)


def test_wrong_settings_at_start_are_one_critical_json_line_each_then_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    monkeypatch.setenv("PORT", "abc")
    monkeypatch.setenv("HOST", "")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with pytest.raises(SystemExit) as exited:
            settings_or_exit()
    finally:
        root.handlers[:], root.level = handlers, level

    assert exited.value.code == 2
    records = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(r["levelname"], r["message"]) for r in records] == [
        ("CRITICAL", "HOST is '': it takes a value that is not empty."),
        ("CRITICAL", f"PORT is 'abc': {WHOLE} 1 to 65535."),
    ]
