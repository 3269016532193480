"""What a benchmark prints: the machine, then one table per setting, as text or as Markdown."""

from __future__ import annotations

import os
import platform
import sqlite3
import statistics
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from bench.load import Run

PACKAGES = ("uvicorn", "connexion", "starlette", "SQLAlchemy", "fastapi", "pydantic")


@dataclass(frozen=True)
class Sample:
    """One wrk run of one app, and its workers' resident memory right after it."""

    backend: str
    sessions: int
    workers: int
    connections: int
    workload: str
    app: str
    round: int
    run: Run
    rss_kb: list[int]
    informational: bool = False
    """Shown, but its errors do not fail the command."""

    @property
    def failures(self) -> int:
        return self.run.status + self.run.socket_errors + self.run.timeout


@dataclass(frozen=True)
class Row:
    """An app's medians over rounds; errors summed over rounds; memory as the last run left it."""

    app: str
    per_second: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    timeouts: int
    rss_mb: list[float]

    @classmethod
    def of(cls, samples: Sequence[Sample]) -> Row:
        last = max(samples, key=lambda s: s.round)
        return cls(
            app=samples[0].app,
            per_second=statistics.median(s.run.per_second for s in samples),
            p50_ms=statistics.median(s.run.p50_us for s in samples) / 1000,
            p99_ms=statistics.median(s.run.p99_us for s in samples) / 1000,
            non_2xx=sum(s.run.status for s in samples),
            socket_errors=sum(s.run.socket_errors for s in samples),
            timeouts=sum(s.run.timeout for s in samples),
            rss_mb=[kb / 1024 for kb in last.rss_kb],
        )


@dataclass(frozen=True)
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]]
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class MemoryResult:
    """One app's workers' resident memory as requests went by."""

    app: str
    workers: int
    connections: int
    marks: list[tuple[int, list[int]]]
    """(requests so far, RSS in kB of each worker): at the start, about halfway, at the end."""
    non_2xx: int
    socket_errors: int
    timeouts: int


def megabytes(kbs: Sequence[int]) -> str:
    return " / ".join(f"{kb / 1024:.1f}" for kb in kbs)


def setting(backend: str, sessions: int, workers: int, connections: int, workload: str) -> str:
    return (
        f"{backend}, {sessions:,} sessions, {workers} worker{'s' * (workers > 1)}, "
        f"{connections} connections: {workload}"
    )


def grouped(samples: Sequence[Sample]) -> dict[tuple[str, int, int, int, str], dict[str, list[Sample]]]:
    """Samples by setting (backend, sessions, workers, connections, workload), then by app, in
    the order they ran."""
    groups: dict[tuple[str, int, int, int, str], dict[str, list[Sample]]] = {}
    for s in samples:
        key = (s.backend, s.sessions, s.workers, s.connections, s.workload)
        groups.setdefault(key, {}).setdefault(s.app, []).append(s)
    return groups


def _ratio(value: float, base: float | None) -> str:
    if not base:
        return "-"
    ratio = value / base
    return f"{ratio:.0f}x" if ratio >= 10 else f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


def setting_tables(samples: Sequence[Sample]) -> list[Table]:
    """One table per setting: each app's req/s, latencies, errors, its speed as a share of the
    bare app's and FastAPI's, and its memory per worker."""
    tables = []
    for key, by_app in grouped(samples).items():
        rows = {app: Row.of(app_samples) for app, app_samples in by_app.items()}
        bare = rows["bare"].per_second if "bare" in rows else None
        fastapi = rows["FastAPI"].per_second if "FastAPI" in rows else None
        informational = any(s.informational for app_samples in by_app.values() for s in app_samples)
        tables.append(
            Table(
                setting(*key) + (" (informational)" if informational else ""),
                [
                    "app",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "non-2xx",
                    "socket errors",
                    "timeouts",
                    "x bare",
                    "x FastAPI",
                    "RSS per worker MB",
                ],
                [
                    [
                        r.app,
                        f"{r.per_second:.0f}",
                        f"{r.p50_ms:.1f}",
                        f"{r.p99_ms:.1f}",
                        str(r.non_2xx),
                        str(r.socket_errors),
                        str(r.timeouts),
                        _ratio(r.per_second, bare),
                        _ratio(r.per_second, fastapi),
                        " / ".join(f"{mb:.0f}" for mb in r.rss_mb),
                    ]
                    for r in rows.values()
                ],
            )
        )
    return tables


def summary_table(samples: Sequence[Sample]) -> Table:
    """Every setting on one line: the service's req/s and p99, beside the peers'."""
    rows = []
    for (_backend, sessions, workers, connections, workload), by_app in grouped(samples).items():
        rows_by_app = {app: Row.of(app_samples) for app, app_samples in by_app.items()}
        service, bare, fastapi = (rows_by_app.get(name) for name in ("service", "bare", "FastAPI"))
        if service is None or bare is None or fastapi is None:
            continue
        rows.append(
            [
                f"{sessions:,}",
                str(workers),
                str(connections),
                workload,
                f"{service.per_second:.0f}",
                f"{bare.per_second:.0f}",
                f"{fastapi.per_second:.0f}",
                _ratio(service.per_second, bare.per_second),
                _ratio(fastapi.per_second, bare.per_second),
                f"{service.p99_ms:.1f}",
                f"{bare.p99_ms:.1f}",
                f"{fastapi.p99_ms:.1f}",
            ]
        )
    return Table(
        "Summary (medians)",
        [
            "sessions",
            "workers",
            "connections",
            "workload",
            "service req/s",
            "bare req/s",
            "FastAPI req/s",
            "service x bare",
            "FastAPI x bare",
            "service p99 ms",
            "bare p99 ms",
            "FastAPI p99 ms",
        ],
        rows,
    )


def scale_table(samples: Sequence[Sample], small: int, big: int) -> Table:
    """For each list workload and app: req/s and p99 at `small` and at `big` sessions, and the
    ratio big/small; the last page at `big` has no `small` twin and is shown as it is."""
    medians: dict[tuple[int, int, int, str, str], Row] = {}
    for (_backend, sessions, workers, connections, workload), by_app in grouped(samples).items():
        for app, app_samples in by_app.items():
            medians[sessions, workers, connections, workload, app] = Row.of(app_samples)
    rows = []
    for (sessions, workers, connections, workload, app), at_big in medians.items():
        if sessions != big:
            continue
        at_small = medians.get((small, workers, connections, workload, app))
        rows.append(
            [
                workload,
                app,
                str(workers),
                str(connections),
                f"{at_small.per_second:.0f}" if at_small else "-",
                f"{at_big.per_second:.0f}",
                _ratio(at_big.per_second, at_small.per_second) if at_small else "-",
                f"{at_small.p99_ms:.1f}" if at_small else "-",
                f"{at_big.p99_ms:.1f}",
                _ratio(at_big.p99_ms, at_small.p99_ms) if at_small else "-",
                str(at_big.non_2xx + at_big.socket_errors + at_big.timeouts),
            ]
        )
    return Table(
        f"Scale: {small:,} against {big:,} sessions (medians)",
        [
            "workload",
            "app",
            "workers",
            "connections",
            f"req/s at {small:,}",
            f"req/s at {big:,}",
            "req/s ratio",
            f"p99 ms at {small:,}",
            f"p99 ms at {big:,}",
            "p99 ratio",
            f"errors at {big:,}",
        ],
        rows,
        [
            "list is page 1, deep is page 100 and last is the last page, 10 sessions a page; "
            f"last is informational (it is page {-(-big // 10):,} at {big:,}).",
        ],
    )


def render(table: Table, markdown: bool) -> str:
    # Words to the left, figures to the right.
    left = [not any(row[i].lstrip("+-")[:1].isdigit() for row in table.rows) for i in range(len(table.headers))]
    if markdown:
        lines = [f"### {table.title}", "", "| " + " | ".join(table.headers) + " |"]
        lines.append("|" + "|".join("---" if is_left else "---:" for is_left in left) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in table.rows]
        lines += ["", *table.notes] if table.notes else []
        return "\n".join(lines) + "\n"
    widths = [max(len(cell) for cell in column) for column in zip(table.headers, *table.rows, strict=False)]

    def line(cells: list[str]) -> str:
        return " | ".join(
            cell.ljust(width) if is_left else cell.rjust(width)
            for cell, width, is_left in zip(cells, widths, left, strict=True)
        )

    lines = [table.title, line(table.headers), "-+-".join("-" * w for w in widths)]
    lines += [line(row) for row in table.rows]
    lines += table.notes
    return "\n".join(lines) + "\n"


def machine(folder: Path) -> dict[str, str]:
    """The machine and the software the figures are for; `folder` holds the databases."""
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text() if Path("/proc/meminfo").exists() else ""
    total_kb = next((int(line.split()[1]) for line in meminfo.splitlines() if line.startswith("MemTotal:")), 0)
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model or platform.processor() or "unknown",
        "ram": f"{total_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "wrk": _wrk_version(),
        "packages": ", ".join(f"{name} {_version(name)}" for name in PACKAGES),
        "os": platform.platform(),
        "disk": f"{folder.parent} on {_filesystem(folder)}",
    }


def _filesystem(folder: Path) -> str:
    """The type of the file system `folder` is on (the longest mount point above it)."""
    mounts = Path("/proc/mounts").read_text().splitlines() if Path("/proc/mounts").exists() else []
    found = ("", "unknown")
    for line in mounts:
        _device, point, kind, *_ = line.split()
        if str(folder.resolve()).startswith(point) and len(point) > len(found[0]):
            found = (point, kind)
    return found[1]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _wrk_version() -> str:
    try:
        done = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)  # noqa: S607
    except OSError:
        return "not installed"
    return (done.stdout or done.stderr).split(" [", 1)[0].strip()


def header(facts: dict[str, str], command: str, date: datetime, markdown: bool, databases: str | None = None) -> str:
    """The machine, the software and the command; `databases` says where the databases are when
    they are not SQLite files."""
    lines = [
        f"Machine: {facts['nproc']} cores (nproc), {facts['cpu']}, {facts['ram']} RAM, {facts['os']}",
        f"Databases: {databases or 'SQLite files in ' + facts['disk']}",
        f"Software: Python {facts['python']}, SQLite {facts['sqlite']}, {facts['wrk']}; {facts['packages']}",
        f"Command: {command}",
        f"Date: {date.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
    ]
    if markdown:
        lines[3] = f"Command: `{command}`"
        return "\n".join(f"- {line}" for line in lines) + "\n"
    return "\n".join(lines) + "\n"


def memory_table(results: Sequence[MemoryResult], requests: int, target_mb: float) -> Table:
    """RSS per worker at the start, about halfway and at the end; flat over the second half is
    what a leak-free app shows."""
    rows = []
    for r in results:
        (_, start), (middle_at, middle), (end_at, end) = r.marks[0], r.marks[1], r.marks[-1]
        growth = max(e - m for e, m in zip(end, middle, strict=False)) / 1024
        rows.append(
            [
                r.app,
                str(r.workers),
                megabytes(start),
                f"{megabytes(middle)} at {middle_at:,}",
                f"{megabytes(end)} at {end_at:,}",
                f"{growth:+.1f}",
                str(r.non_2xx),
                str(r.socket_errors),
                str(r.timeouts),
            ]
        )
    largest = max((kb / 1024 for r in results if r.app == "service" for _, kbs in r.marks for kb in kbs), default=0.0)
    verdict = "met" if largest <= target_mb else "NOT met"
    return Table(
        f"Memory: RSS per worker MB over about {requests:,} requests (create/get/list mix)",
        [
            "app",
            "workers",
            "at start",
            "about halfway",
            "at the end",
            "2nd half MB",
            "non-2xx",
            "socket errors",
            "timeouts",
        ],
        rows,
        [f"Target: <= {target_mb:g} MB per service worker: {verdict} (largest {largest:.1f} MB)."],
    )
