"""Driving load with wrk: the workloads, one run, and what a run reports."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from storage import vocabulary

WRK_SCRIPTS = Path(__file__).resolve().parent / "wrk"


@dataclass(frozen=True)
class Workload:
    """A wrk script (bench/wrk/<script>.lua) and the arguments it takes after `--`."""

    name: str
    script: str
    args: tuple[str, ...] = ()


def workload(name: str, sessions: int) -> Workload:
    """The workload `name` on a database prefilled with `sessions` sessions (ids 1..sessions)."""
    if name in ("get", "mix"):
        return Workload(name, name, (str(sessions),))
    if name == "review":
        _, memberships = vocabulary.rows()
        words = [str(m["word_id"]) for m in memberships if m["group_id"] == REVIEW_GROUP]
        return Workload(name, "review", (str(sessions), *words))
    if name == "last":
        return Workload(name, "last", (str(max(1, -(-sessions // 10))),))
    return Workload(name, name)


WORKLOADS = ("create", "review", "get", "list", "deep")
"""What the comparison runs; `last` (the last page) and `mix` (for --memory) exist too."""
REVIEW_GROUP = 1
"""The group whose sessions (ids 4, 8, ...: see bench/backends.py) the review workload posts to."""


@dataclass(frozen=True)
class Run:
    """What one wrk run reports: counts, and latencies in microseconds."""

    requests: int
    duration_us: int
    p50_us: int
    p99_us: int
    connect: int
    read: int
    write: int
    timeout: int
    status: int
    """Answers of 400 and over."""

    @property
    def per_second(self) -> float:
        return self.requests / (self.duration_us / 1e6) if self.duration_us else 0.0

    @property
    def socket_errors(self) -> int:
        return self.connect + self.read + self.write


def wrk_path() -> str:
    """Where wrk is; SystemExit saying how to get it if it is missing."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed; ./scripts/dev bench installs it (apt-get install wrk) as root.")
    return found


def drive(url: str, load: Workload, *, connections: int, seconds: float, timeout: float | None = None) -> Run:
    """One wrk run of `load` against `url` (http://host:port)."""
    command = [wrk_path(), "-t1", f"-c{connections}", f"-d{seconds:g}s"]
    if timeout is not None:
        command.append(f"--timeout={timeout:g}s")
    command += ["-s", str(WRK_SCRIPTS / f"{load.script}.lua"), url]
    if load.args:
        command += ["--", *load.args]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=seconds + 120)  # noqa: S603
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return Run(**json.loads(lines[-1]))
