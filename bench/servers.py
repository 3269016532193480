"""The three apps, and running one as a server process: started, waited for, measured, stopped."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
READY_PATH = "/api/v1/study-sessions?per_page=1"
START_SECONDS = 60
IDLE_WINDOW = 0.2
IDLE_TICKS = 2
"""CPU clock ticks (1/100 s) in IDLE_WINDOW under which a server counts as idle: 10 %."""


def service_command(workers: int, port: int) -> list[str]:
    """How production starts the service (README, "Production"); change it here when production
    does. Nothing else in the harness knows it. Its settings are SERVICE_ENV's."""
    return [sys.executable, "-m", "gunicorn", "-c", "python:edge.serving", "app:app"]


SERVICE_ENV = {
    # Rate limits stay on, in this process's memory as production's default has them, but far
    # above what one wrk client sends: their cost is measured, not their 429s.
    "RATE_LIMIT_WRITE": "1000000000/minute",
    "RATE_LIMIT_READ": "1000000000/minute",
}


def peer_command(target: str) -> Callable[[int, int], list[str]]:
    """A peer (`module:app`) under the same uvicorn command the service runs under today."""

    def command(workers: int, port: int) -> list[str]:
        return [sys.executable, "-m", "uvicorn", target, "--workers", str(workers), "--host", HOST, "--port", str(port)]

    return command


@dataclass(frozen=True)
class App:
    name: str
    command: Callable[[int, int], list[str]]
    env: Callable[[int, int], dict[str, str]] = lambda workers, port: {}


def service_env(workers: int, port: int) -> dict[str, str]:
    return {**SERVICE_ENV, "WORKERS": str(workers), "HOST": HOST, "PORT": str(port)}


SERVICE = App("service", service_command, service_env)
BARE = App("bare", peer_command("bench.peers.bare:app"))
FASTAPI = App("FastAPI", peer_command("bench.peers.fastapi_peer:app"))
APPS = (SERVICE, BARE, FASTAPI)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """`app` with `workers` worker processes on `database_url`, on a free port; its output goes
    to a log file in `folder`."""

    def __init__(self, app: App, workers: int, database_url: str, folder: Path) -> None:
        self.app = app
        self.workers = workers
        self.database_url = database_url
        self.port = free_port()
        self.log = folder / f"{app.name}-{workers}w-{self.port}.log"
        with self.log.open("w") as log:
            self.process = subprocess.Popen(  # noqa: S603
                app.command(workers, self.port),
                cwd=ROOT,
                env={
                    **os.environ,
                    "LOG_LEVEL": "WARNING",
                    "DATABASE_URL": database_url,
                    **app.env(workers, self.port),
                },
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def wait_until_up(self) -> None:
        """Returns once every worker is there and a list request is answered 200."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app.name} exited ({self.process.returncode}):\n{self.tail()}")
            if len(self.worker_pids()) == self.workers and self._answers():
                return
            time.sleep(0.2)
        raise RuntimeError(f"{self.app.name} did not start in {START_SECONDS} s:\n{self.tail()}")

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            conn.request("GET", READY_PATH)
            return conn.getresponse().status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the children of the server process (not
        multiprocessing's resource tracker), or the server process itself if it has none."""
        children = [pid for pid in _children(self.process.pid) if b"resource_tracker" not in _cmdline(pid)]
        return sorted(children) or [self.process.pid]

    def rss_kb(self) -> list[int]:
        """Each worker's resident memory (VmRSS), in kB."""
        return [_vm_rss_kb(pid) for pid in self.worker_pids()]

    def wait_until_idle(self, seconds: float = 120) -> None:
        """Returns once the server's processes have (almost) stopped using CPU: what the last run
        left in flight is answered, and does not slow the next app's run down."""
        deadline = time.monotonic() + seconds
        before = self._cpu_ticks()
        while time.monotonic() < deadline:
            time.sleep(IDLE_WINDOW)
            now = self._cpu_ticks()
            if now - before <= IDLE_TICKS:
                return
            before = now

    def _cpu_ticks(self) -> int:
        return sum(cpu_ticks(pid) for pid in {self.process.pid, *self.worker_pids()})

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        """SIGTERM to the server process, which stops its workers and waits for them; SIGKILL to
        the workers and then to it if it is not gone in time."""
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            for pid in _children(self.process.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            self.process.kill()
            self.process.wait()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                status = (entry / "status").read_text()
                if f"\nPPid:\t{pid}\n" in status:
                    found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def cpu_ticks(pid: int) -> int:
    """User and system CPU time of `pid` so far, in clock ticks."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def _vm_rss_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), "VmRSS: 0 kB")
    return int(line.split()[1])
