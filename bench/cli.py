"""./scripts/dev bench: the service against a bare ASGI app and FastAPI, under the same load on
copies of the same database; see `--help` and docs/benchmarks.md."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench import ceiling, profile, report
from bench.backends import Backend, PostgresBackend, backend_for
from bench.check import Disagreement, check_agreement
from bench.load import WORKLOADS, drive, workload, wrk_path
from bench.servers import APPS, Server

PREFILLED = 1000
SCALE_SESSIONS = 1_000_000
WARM_UP_SECONDS = 1.0
MEMORY_TARGET_MB = 120


@dataclass(frozen=True)
class Mode:
    """What a mode runs when its options are not given."""

    rounds: int
    duration: float
    workers: str
    connections: str
    workloads: str
    timeout: float | None = None
    """wrk's --timeout; None is wrk's own default, 2 s."""


MODES = {
    "compare": Mode(rounds=3, duration=5, workers="1,2", connections="16,64", workloads=",".join(WORKLOADS)),
    "smoke": Mode(rounds=1, duration=1, workers="1", connections="16", workloads="create,get"),
    "memory": Mode(rounds=1, duration=5, workers="1,2", connections="16", workloads="mix"),
    # A page at 1,000,000 sessions takes seconds under load on every app; past wrk's 2 s its
    # latency would leave the percentiles that the ratio is about.
    "scale": Mode(rounds=3, duration=5, workers="1,2", connections="16", workloads="list,deep,last", timeout=10),
    # No web stack and no wrk: threads of this process on the database (bench/ceiling.py).
    "pg-ceiling": Mode(rounds=1, duration=5, workers="1", connections="1,2,4,8,16", workloads="create"),
    # py-spy on one worker of each app in turn (bench/profile.py).
    "profile": Mode(rounds=1, duration=10, workers="1", connections="16", workloads="create,get"),
}


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./scripts/dev bench",
        description="Runs the service, a bare Starlette app and a FastAPI app, each on its own copy of the same "
        "database, under the same wrk load, interleaved, and prints medians over rounds.",
    )
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument(
        "--smoke",
        action="store_true",
        help="a few seconds: 1 round of 1 s, create and get, 16 connections, 1 worker (CI runs it)",
    )
    modes.add_argument(
        "--memory",
        action="store_true",
        help="each worker's RSS over about --requests requests of "
        "a create/get/list mix, in wrk runs of --duration seconds",
    )
    modes.add_argument(
        "--scale", action="store_true", help=f"list pages at {PREFILLED:,} against {SCALE_SESSIONS:,} sessions"
    )
    modes.add_argument(
        "--pg-ceiling",
        action="store_true",
        help="PostgreSQL's own rate for the service's create transaction, without the web stack, at 1 to 16 "
        "connections (--connections), --duration seconds each; needs DATABASE_URL to name PostgreSQL",
    )
    modes.add_argument(
        "--profile",
        action="store_true",
        help="where one worker of each app spends its CPU, per request and by layer, under --workloads "
        "(create,get) for --duration seconds (10) each, with py-spy",
    )
    parser.add_argument("--rounds", type=int, help="rounds to take medians over (3)")
    parser.add_argument("--duration", type=float, help="seconds per wrk run (5)")
    parser.add_argument("--workers", type=_numbers, help="worker processes per app, comma-separated (1,2)")
    parser.add_argument(
        "--connections", type=_numbers, help="wrk connections, comma-separated (16,64; 16 with --memory and --scale)"
    )
    parser.add_argument("--workloads", help=f"comma-separated, of {', '.join(WORKLOADS)} ({','.join(WORKLOADS)})")
    parser.add_argument(
        "--timeout",
        type=float,
        help="wrk's --timeout in seconds, past which an answer counts as a timeout (wrk's default, 2; 10 with --scale)",
    )
    parser.add_argument("--requests", type=int, default=100_000, help="--memory: requests per app (100000)")
    parser.add_argument("--scale-sessions", type=int, default=SCALE_SESSIONS, help=argparse.SUPPRESS)
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the raw results to PATH")
    args = parser.parse_args(argv)
    chosen = [
        mode for mode in ("smoke", "memory", "scale", "pg-ceiling", "profile") if getattr(args, mode.replace("-", "_"))
    ]
    args.mode = chosen[0] if chosen else "compare"
    defaults = MODES[args.mode]
    args.rounds = args.rounds or defaults.rounds
    args.duration = args.duration or defaults.duration
    args.workers = args.workers or _numbers(defaults.workers)
    args.connections = args.connections or _numbers(defaults.connections)
    args.workloads = (args.workloads or defaults.workloads).split(",")
    args.timeout = args.timeout or defaults.timeout
    unknown = set(args.workloads) - {*WORKLOADS, "last", "mix"}
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    return args


def say(text: str) -> None:
    """Progress, on stderr; the results go to stdout."""
    print(text, file=sys.stderr, flush=True)


class Bench:
    """One invocation: the backend that makes databases, the folder for them and the logs, and
    every sample taken."""

    def __init__(self, args: argparse.Namespace, backend: Backend, folder: Path) -> None:
        self.args = args
        self.backend = backend
        self.folder = folder
        self.samples: list[report.Sample] = []
        self.memory: list[report.MemoryResult] = []
        self.planned = 0
        self.done = 0
        self.started = time.monotonic()

    @contextmanager
    def servers(self, workers: int, urls: dict[str, str], sessions: int) -> Iterator[list[Server]]:
        """The three apps at once, each on its own database, checked against the service and warmed up."""
        servers: list[Server] = []
        try:
            for app in APPS:
                servers.append(Server(app, workers, urls[app.name], self.folder))
            for server in servers:
                server.wait_until_up()
            check_agreement(servers, sessions=sessions, reset=lambda s: self.backend.reset(s.database_url, sessions))
            for server in servers:
                drive(server.url, workload("mix", sessions), connections=16, seconds=WARM_UP_SECONDS)
                server.wait_until_idle()
                self.backend.reset(server.database_url, sessions)
            yield servers
        finally:
            for server in servers:
                server.stop()

    def measure(self, server: Server, sessions: int, workers: int, connections: int, name: str, round: int) -> None:
        self.backend.reset(server.database_url, sessions)
        run = drive(
            server.url,
            workload(name, sessions),
            connections=connections,
            seconds=self.args.duration,
            timeout=self.args.timeout,
        )
        server.wait_until_idle()
        sample = report.Sample(
            self.backend.name,
            sessions,
            workers,
            connections,
            name,
            server.app.name,
            round,
            run,
            server.rss_kb(),
            informational=name == "last",
        )
        self.samples.append(sample)
        self.done += 1
        errors = f", {sample.failures} errors" if sample.failures else ""
        say(
            f"[{self.done:>3}/{self.planned}] {_elapsed(self.started)} round {round}, {sessions:,} sessions, "
            f"{workers}w, c{connections}, {name:<6} {server.app.name:<8} {run.per_second:8.0f} req/s, "
            f"p99 {run.p99_us / 1000:8.1f} ms{errors}"
        )

    def compare(self, sizes: Sequence[int]) -> None:
        """Every workload on every app, app after app (A B C A B C ...), round after round."""
        a = self.args
        for sessions in sizes:
            urls = {app.name: self.backend.copy(sessions, app.name) for app in APPS}
            loads = [w for w in a.workloads if w != "last" or sessions == max(sizes)]
            runs = a.rounds * len(a.workers) * len(a.connections) * len(loads) * len(APPS)
            self.planned += runs
            say(
                f"{self.backend.name}: {len(APPS)} copies of a database of {sessions:,} sessions are ready; "
                f"{runs} runs of {a.duration:g} s to go"
            )
            for round in range(1, a.rounds + 1):
                for workers in a.workers:
                    with self.servers(workers, urls, sessions) as servers:
                        for connections in a.connections:
                            for name in loads:
                                for server in servers:
                                    self.measure(server, sessions, workers, connections, name, round)

    def memory_growth(self) -> None:
        """Each app in turn, the others idle: mixed load until about --requests requests, RSS at
        the start, about halfway and at the end."""
        a = self.args
        urls = {app.name: self.backend.copy(PREFILLED, app.name) for app in APPS}
        for workers in a.workers:
            with self.servers(workers, urls, PREFILLED) as servers:
                for server in servers:
                    self.memory.append(self._drive_for_memory(server, workers))

    def _drive_for_memory(self, server: Server, workers: int) -> report.MemoryResult:
        a = self.args
        marks = [(0, server.rss_kb())]
        total, non_2xx, socket_errors, timeouts = 0, 0, 0, 0
        while total < a.requests:
            run = drive(
                server.url,
                workload("mix", PREFILLED),
                connections=a.connections[0],
                seconds=a.duration,
                timeout=a.timeout,
            )
            server.wait_until_idle()
            total += run.requests
            non_2xx += run.status
            socket_errors += run.socket_errors
            timeouts += run.timeout
            rss = server.rss_kb()
            if (len(marks) == 1 and total >= a.requests // 2) or total >= a.requests:
                marks.append((total, rss))
            say(
                f"{_elapsed(self.started)} memory, {workers}w, {server.app.name:<8} {total:>7} requests, "
                f"RSS {report.megabytes(rss)} MB"
            )
        return report.MemoryResult(server.app.name, workers, a.connections[0], marks, non_2xx, socket_errors, timeouts)

    def failures(self) -> int:
        counted = sum(s.failures for s in self.samples if not s.informational)
        return counted + sum(r.non_2xx + r.socket_errors + r.timeouts for r in self.memory)


def _elapsed(since: float) -> str:
    seconds = int(time.monotonic() - since)
    return f"{seconds // 60:>3}:{seconds % 60:02d}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    database_url = os.environ.get("DATABASE_URL")
    if args.mode == "pg-ceiling" and not (database_url or "").startswith("postgresql"):
        raise SystemExit(
            "--pg-ceiling measures PostgreSQL: set DATABASE_URL to a postgresql+psycopg:// URL of a server "
            "where it may create and drop databases (bench_*)."
        )
    if args.mode != "pg-ceiling":
        wrk_path()
    command = " ".join([os.environ.get("BENCH_INVOKED_AS", "python -m bench"), *map(shlex.quote, sys.argv[1:])])
    date = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        facts = report.machine(Path(tmp))
        backend = backend_for(database_url, Path(tmp))
        databases = backend.server() if isinstance(backend, PostgresBackend) else None
        print(report.header(facts, command, date, args.markdown, databases), flush=True)
        if args.mode == "pg-ceiling":
            assert database_url is not None
            return ceiling.run(
                database_url, seconds=args.duration, ladder=args.connections, markdown=args.markdown, say=say
            )
        if args.mode == "profile":
            profiles = profile.run(backend, Path(tmp), workloads=args.workloads, seconds=args.duration)
            print(report.render(profile.table(profiles), args.markdown), flush=True)
            return 0
        bench = Bench(args, backend, Path(tmp))
        try:
            if args.mode == "memory":
                bench.memory_growth()
            elif args.mode == "scale":
                bench.compare([PREFILLED, args.scale_sessions])
            else:
                bench.compare([PREFILLED])
        except Disagreement as error:
            say(f"FAILED: the apps disagree, so nothing is measured: {error}")
            return 2
        finally:
            backend.close()
    tables: list[report.Table] = []
    if args.mode == "memory":
        tables.append(report.memory_table(bench.memory, args.requests, MEMORY_TARGET_MB))
    else:
        tables += report.setting_tables(bench.samples)
        tables.append(report.summary_table(bench.samples))
        if args.mode == "scale":
            tables.append(report.scale_table(bench.samples, PREFILLED, args.scale_sessions))
    for table in tables:
        print(report.render(table, args.markdown), flush=True)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "machine": facts,
                    "command": command,
                    "date": date.isoformat(),
                    "samples": [asdict(s) for s in bench.samples],
                    "memory": [asdict(m) for m in bench.memory],
                },
                indent=1,
            )
        )
    failures = bench.failures()
    if failures:
        say(f"FAILED: {failures} non-2xx answers, socket errors or timeouts (see the tables)")
        return 1
    return 0
