"""Starting the service, and PgBouncer, as separate processes for the tests that need real ones."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
DEV_RUN = (ROOT / "scripts" / "dev", "run")
"""The README's command."""
GUNICORN = (BIN / "gunicorn", "-c", "python:edge.serving", "app:app")
"""Production's command (README, edge/serving.py)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def service(
    folder: Path, database_url: str, command: tuple[str | Path, ...] = DEV_RUN, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """The service started by `command` on a free port and the database `database_url`, with
    `env` on top of the environment; its URL and its process. Its log is `folder`/server-PORT.log;
    it is stopped with SIGTERM afterwards, if it is still running."""
    port = free_port()
    environment = {
        **os.environ,
        "PORT": str(port),
        "DATABASE_URL": database_url,
        "VALIDATE_RESPONSES": "1",
        "LOG_LEVEL": "WARNING",
        "RATE_LIMIT_WRITE": "off",  # unless a test sets its own: runs of hundreds of requests
        "RATE_LIMIT_READ": "off",
        **env,
    }
    log = folder / f"server-{port}.log"
    with log.open("w") as output:
        server = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=output, stderr=subprocess.STDOUT)
        try:
            url = f"http://127.0.0.1:{port}"
            wait_until_up(url, server, log)
            yield url, server
        finally:
            if server.poll() is None:
                server.terminate()
                server.wait(timeout=60)


def wait_until_up(
    url: str, server: subprocess.Popen[Any], log: Path | None = None, path: str = "/api/v1/readyz"
) -> None:
    """Returns once `url``path` answers 200; fails the test, with the end of `log` (or of the
    server's stderr, where it was piped), if the server exits or takes over two minutes."""
    deadline = time.monotonic() + 120
    while server.poll() is None and time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.kill()
    output = log.read_text() if log is not None else str(server.communicate(timeout=10))
    pytest.fail(f"the service did not start: {output[-3000:]}")


PROJECT_FILES = ("app.py", "edge", "handlers", "storage", "openapi", "scripts", "redocly.yaml", "setup.cfg",
                 "pyproject.toml", "constraints.txt", "package.json", "package-lock.json", "README.md")  # fmt: skip
"""What the project is made of: no build output, no installs."""


def project_copy(folder: Path) -> Path:
    """A copy of the project's files in `folder`/project, with the project's .venv and
    node_modules linked in (shared, not copied)."""
    project = folder / "project"
    project.mkdir()
    for name in PROJECT_FILES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, project / name)
    for installed in (".venv", "node_modules"):
        (project / installed).symlink_to(ROOT / installed)
    return project


def debian_binary(name: str, folder: str, how: str) -> str:
    """Debian's `name` (on PATH or in `folder`; ./scripts/dev test installs it as root); the test
    is skipped where it is absent, `how` saying how to get it, and fails in CI."""
    found = shutil.which(name) or (f"{folder}/{name}" if Path(folder, name).exists() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is needed in CI; ./scripts/dev test installs it where it can (as root)")
        pytest.skip(f"{name} is not installed ({how})")
    return found


def chromium() -> str:
    return debian_binary("chromium", "/usr/bin", "./scripts/dev test installs it as root: apt-get install chromium")


def playwright_sync_api() -> Any:
    """playwright.sync_api (the test extra installs it); skipped where absent, outside CI."""
    try:
        import playwright.sync_api
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is needed in CI: it is in setup.cfg's test extra")
        pytest.skip("playwright is not installed (pip install -e '.[test]')")
    return playwright.sync_api


def pgbouncer_binary() -> str:
    return debian_binary("pgbouncer", "/usr/sbin", "./scripts/dev test installs it as root")


@contextmanager
def pgbouncer(folder: Path, database_url: str, pool_size: int = 10) -> Iterator[str]:
    """PgBouncer in transaction pooling mode in front of `database_url`'s database; the URL that
    reaches the database through it. It refuses to run as root, so it runs as `postgres`."""
    binary = pgbouncer_binary()
    target = make_url(database_url)
    port = free_port()
    # Not under `folder`: pytest's folders are root's alone, and pgbouncer reads its own as postgres.
    home = Path(tempfile.mkdtemp(prefix=f"pgbouncer-{port}-"))
    home.chmod(0o755)
    (home / "pgbouncer.ini").write_text(
        f"""[databases]
{target.database} = host={target.host} port={target.port or 5432} dbname={target.database} user={target.username}
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {home}/users.txt
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
logfile = {home}/pgbouncer.log
pidfile = {home}/pgbouncer.pid
"""
    )
    (home / "users.txt").write_text(f'"{target.username}" ""\n')
    run_as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if run_as:
        shutil.chown(home, "postgres")
        for child in home.iterdir():
            shutil.chown(child, "postgres")
    process = subprocess.Popen([*run_as, binary, str(home / "pgbouncer.ini")], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                log = (home / "pgbouncer.log").read_text() if (home / "pgbouncer.log").exists() else ""
                pytest.fail(f"pgbouncer did not start: {log[-2000:]}")
            time.sleep(0.05)
        yield target.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    finally:
        process.terminate()
        process.wait(timeout=10)
        (folder / "pgbouncer.log").write_bytes((home / "pgbouncer.log").read_bytes())
        shutil.rmtree(home, ignore_errors=True)


@contextmanager
def redis_server(folder: Path) -> Iterator[tuple[str, Callable[[], None], Callable[[], None]]]:
    """A Redis of the test's own on a free port (not the machine's): its URL, and functions that
    stop it (SIGKILL, as a crash would) and start it again on the same port."""
    port = free_port()
    process: subprocess.Popen[bytes] | None = None

    def start() -> None:
        nonlocal process
        command = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.05)

    def stop() -> None:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is needed in CI (./scripts/dev test installs Debian's as root)")
        pytest.skip("redis-server is not installed here")
    start()
    try:
        yield f"redis://127.0.0.1:{port}", stop, start
    finally:
        stop()


def processes(field_index: int, value: int) -> list[int]:
    """Live (not zombie) processes whose /proc/PID/stat field `field_index` (after the command:
    1 is the parent, 2 the process group) is `value`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[field_index]) == value:
                found.append(int(stat.parent.name))
    return found
