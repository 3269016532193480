"""Mutation testing, one part of the code at a time, against the in-process tests that own it.

    ./scripts/dev mutate [PART ...] [-- ARGUMENTS FOR `mutmut run`]

mutmut tries each mutant with every test that reaches its function. Every HTTP test passes
through every middleware, so a middleware mutant that survives would rerun some 400 tests (about
three minutes here), and the whole of edge/ would take a day. Each part below is instead tried
against the test files that own it, in a folder of its own (var/mutate/PART/, a copy of the tree
with setup.cfg's [mutmut] section narrowed to the part), so a survivor costs seconds. That is the
stricter count: a mutant that only another file's test would notice survives here, and
docs/testing.md says, for every survivor, which test now kills it or why it is equivalent.

Every part runs its tests on SQLite (setup.cfg's `-k "not postgresql"`), but those in
ON_POSTGRESQL: `database-postgresql` is `database`'s modules and test files again, with `-k "not
sqlite"` in its copied setup.cfg, so that the tests' `[postgresql]` cases (and those that name no
backend) try the code only PostgreSQL runs, on the server TEST_POSTGRESQL_URL names
(tests/conftest.py).

With no PART, every part runs, one after the other. A second run of a part keeps the result of
every function that did not change (mutmut's own cache); `rm -rf var/mutate/PART` starts it anew.
Then, for a part:

    cd var/mutate/PART && ../../../.venv/bin/mutmut results     # the survivors
    cd var/mutate/PART && ../../../.venv/bin/mutmut show NAME   # what one of them changes
"""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTMUT = ROOT / ".venv" / "bin" / "mutmut"
WORK = ROOT / "var" / "mutate"

# part: (the modules it mutates, the test files that own them)
PARTS: dict[str, tuple[list[str], list[str]]] = {
    # Tried in full by the first run (docs/testing.md), all but study_sessions.py: its create reran
    # ~100 tests a mutant against the whole of tests/, so it is a part of its own.
    "storage": (
        [
            "storage/reviews.py",
            "storage/idempotency.py",
            "storage/pages.py",
            "storage/words.py",
            "storage/groups.py",
            "storage/study_activities.py",
            "storage/types.py",
            "storage/errors.py",
            "storage/schema.py",
        ],
        ["tests/"],
    ),
    "sessions": (
        ["storage/study_sessions.py"],
        ["tests/test_storage.py", "tests/test_study_sessions_api.py", "tests/test_idempotency.py"],
    ),
    "database": (
        [
            "storage/engine.py",
            "storage/database.py",
            "storage/compiled.py",
            "storage/migrate.py",
            "storage/vocabulary.py",
        ],
        ["tests/test_storage.py", "tests/test_service.py", "tests/test_study_sessions_api.py"],
    ),
    "limits": (
        ["edge/rate_limits.py", "edge/middleware/rate_limit.py", "edge/middleware/clients.py"],
        ["tests/test_rate_limits.py", "tests/test_api_keys.py"],
    ),
    "keys": (["edge/security.py"], ["tests/test_api_keys.py", "tests/test_settings.py"]),
    "input": (
        ["edge/validation.py", "edge/middleware/body.py", "edge/middleware/paths.py"],
        ["tests/test_hostile_input.py", "tests/test_request_validation.py", "tests/test_connexion_internals.py"],
    ),
    "problems": (
        ["edge/problems.py"],
        [
            "tests/test_hostile_input.py",
            "tests/test_service.py",
            "tests/test_study_sessions_api.py",
            "tests/test_idempotency.py",
            "tests/test_reviews.py",
        ],
    ),
    "operations": (
        [
            "edge/metrics.py",
            "edge/logs.py",
            "edge/middleware/metrics.py",
            "edge/middleware/request_log.py",
            "edge/middleware/platform.py",
        ],
        ["tests/test_operations.py", "tests/test_service.py"],
    ),
    "headers": (
        ["edge/middleware/hardening.py", "edge/middleware/cors.py", "edge/middleware/base.py"],
        ["tests/test_security_headers.py", "tests/test_service.py"],
    ),
    "idempotency": (["edge/middleware/idempotency.py"], ["tests/test_idempotency.py"]),
    "settings": (["edge/settings.py"], ["tests/test_settings.py"]),
    # Its live tests (tests/test_protocol.py) run the server in a process of its own, which mutmut
    # cannot follow: the part is tried against the same promises held in process.
    "protocol": (["edge/protocol.py"], ["tests/test_protocol_in_process.py"]),
    "app": (
        ["edge/docs.py", "edge/resolver.py", "edge/connexion_internals.py", "edge/middleware/__init__.py"],
        ["tests/test_service.py", "tests/test_docs.py", "tests/test_connexion_internals.py"],
    ),
}

# PostgreSQL's own code (storage/database.py's transactions on the event loop) runs only in the
# tests' [postgresql] cases, which every other part's `-k` leaves out.
PARTS["database-postgresql"] = PARTS["database"]
ON_POSTGRESQL = {"database-postgresql"}

# What a part's folder holds: what the tests import and read, besides the code mutmut copies.
TREE = ["app.py", "storage", "edge", "handlers", "openapi", "tests", "schemathesis.toml", "pyproject.toml", "README.md"]


def prepare(part: str) -> Path:
    """var/mutate/PART/: the tree as it is now, and setup.cfg with [mutmut] narrowed to the part."""
    modules, tests = PARTS[part]
    folder = WORK / part
    folder.mkdir(parents=True, exist_ok=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.db", "*.db-*")
    for name in [*TREE, "build/docs"]:
        source, target = ROOT / name, folder / name
        if source.is_dir():
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(source, target, ignore=ignore)
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    config = configparser.ConfigParser(interpolation=None)
    config.read(ROOT / "setup.cfg")
    config["mutmut"]["only_mutate"] = "\n" + "\n".join(modules)
    config["mutmut"]["pytest_add_cli_args_test_selection"] = "\n" + "\n".join(tests)
    if part in ON_POSTGRESQL:
        arguments = config["mutmut"]["pytest_add_cli_args"].split("\n")
        arguments[arguments.index("not postgresql")] = "not sqlite"
        config["mutmut"]["pytest_add_cli_args"] = "\n".join(arguments)
    with (folder / "setup.cfg").open("w") as file:
        config.write(file)
    return folder


def main(arguments: list[str]) -> int:
    parts, mutmut_arguments = arguments, []
    if "--" in arguments:
        split = arguments.index("--")
        parts, mutmut_arguments = arguments[:split], arguments[split + 1 :]
    unknown = [part for part in parts if part not in PARTS]
    if unknown:
        print(f"no such part: {', '.join(unknown)}; the parts are {', '.join(PARTS)}", file=sys.stderr)
        return 2
    # Fewer generated examples a test: a mutant reruns the same tests hundreds of times.
    env = {**os.environ, "HYPOTHESIS_PROFILE": os.environ.get("HYPOTHESIS_PROFILE", "quick")}
    failed = 0
    for part in parts or list(PARTS):
        folder = prepare(part)
        print(f"==> {part}: {' '.join(PARTS[part][0])}", flush=True)
        # A PostgreSQL that cannot be reached fails the tests, as in CI (tests/conftest.py), rather
        # than skipping them: skipped, they would pass, and every mutant would count as survived.
        part_env = {**env, "CI": "true"} if part in ON_POSTGRESQL else env
        code = subprocess.run([str(MUTMUT), "run", *mutmut_arguments], cwd=folder, env=part_env, check=False).returncode
        failed = failed or code
    return failed


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
