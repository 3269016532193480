"""./scripts/dev bench --profile: where a worker's CPU goes, per request and by layer.

Each app runs with one worker on its own copy of the prefilled database (SQLite, or the PostgreSQL
server DATABASE_URL names), under wrk (16 connections), while py-spy samples the worker (`--gil`:
only the thread holding the GIL, so only Python that ran on a CPU; threads waiting for the GIL,
for a lock or for the disk are not counted). The worker's own CPU time, from /proc, is the whole:
the samples say how much of it ran Python and where; the rest ran outside the GIL (the kernel's
half of each system call, SQLite's C code with the GIL released, thread wake-ups). A sample is
filed under the innermost frame that belongs to a layer below (a json.dumps that Connexion calls
is JSON, a Starlette function that our middleware calls is Starlette)."""

from __future__ import annotations

import collections
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench import report
from bench.backends import Backend
from bench.load import drive, workload
from bench.servers import APPS, Server, cpu_ticks

RATE = 1000
"""py-spy's samples a second."""
LAYERS = (  # (layer, pattern of a frame's file), innermost match wins; first match among these
    ("sqlite3", r"^<?(sqlite3|_sqlite)"),
    ("SQLAlchemy", r"sqlalchemy/"),
    ("psycopg (PostgreSQL's driver)", r"(^|/)psycopg"),
    ("greenlet", r"greenlet"),
    ("prometheus_client (metrics)", r"prometheus_client/"),
    ("limits (rate limits)", r"(^|/)limits/"),
    ("jsonschema (validation)", r"jsonschema|referencing/|rpds"),
    ("Connexion", r"connexion/"),
    ("Starlette", r"starlette/"),
    ("uvicorn and httptools", r"uvicorn|httptools"),
    ("the service: edge/", r"(^|/)edge/"),
    ("the service: handlers/", r"(^|/)handlers/"),
    ("the service: storage/", r"(^|/)storage/"),
    ("FastAPI and pydantic", r"fastapi/|pydantic"),
    ("the peers' own code", r"bench/peers/"),
    ("JSON", r"(^|/)json/"),
    ("logging", r"(^|/)logging/"),
    ("uuid, random", r"(^|/)(uuid|random|secrets)\.py"),
    ("threads (concurrent.futures, threading, queue)", r"(^|/)(concurrent/|threading\.py|queue\.py)"),
    ("the event loop (asyncio, uvloop)", r"(^|/)asyncio/|uvloop"),
    ("gunicorn", r"gunicorn/"),
)
FRAME_FILE = re.compile(r"\(([^():]+)(?::\d+)?\)$")


@dataclass(frozen=True)
class Profile:
    app: str
    workload: str
    requests: int
    per_second: float
    cpu_us: float
    """The worker's CPU time (user and system, every thread) per request."""
    python_us: float
    """Of which ran Python (holding the GIL), per request."""
    layers: dict[str, float]
    """The Python µs per request, by layer."""


def layer_of(stack: str) -> str:
    """The layer of one sampled stack (frames root first, `;`-separated)."""
    for frame in reversed(stack.split(";")):
        match = FRAME_FILE.search(frame)
        path = match.group(1) if match else frame
        for name, pattern in LAYERS:
            if re.search(pattern, path):
                return name
    return "other (the standard library, gc)"


def by_layer(raw: str) -> collections.Counter[str]:
    """py-spy's raw output (one `stack count` a line) as samples by layer."""
    samples: collections.Counter[str] = collections.Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():  # a stack py-spy could not read whole is left out
            samples[layer_of(stack)] += int(count)
    return samples


def profile(server: Server, name: str, seconds: float, folder: Path) -> Profile:
    """Profiles `server`'s one worker under `name`'s load for `seconds`."""
    load = workload(name, 1000)
    drive(server.url, load, connections=16, seconds=1)  # warm
    pid = server.worker_pids()[0]
    out = folder / f"{server.app.name}-{name}.txt"
    py_spy = str(Path(sys.executable).with_name("py-spy"))
    spy = subprocess.Popen(  # noqa: S603
        [
            py_spy,
            "record",
            "--gil",
            "--nonblocking",
            "--format",
            "raw",
            "--rate",
            str(RATE),
            "--duration",
            str(round(seconds) + 1),
            "--output",
            str(out),
            "--pid",
            str(pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)  # py-spy attached
    before = cpu_ticks(pid)
    run = drive(server.url, load, connections=16, seconds=seconds)
    used_us = (cpu_ticks(pid) - before) * 10_000
    spy.wait()
    samples = by_layer(out.read_text())
    requests = max(run.requests, 1)
    # Samples cover py-spy's whole recording: scale them to the requests of that time.
    recorded = sum(samples.values()) / RATE * 1e6 * seconds / (round(seconds) + 1)
    return Profile(
        app=server.app.name,
        workload=name,
        requests=run.requests,
        per_second=run.per_second,
        cpu_us=used_us / requests,
        python_us=recorded / requests,
        layers={layer: recorded * n / sum(samples.values()) / requests for layer, n in samples.items()},
    )


def run(backend: Backend, folder: Path, *, workloads: list[str], seconds: float) -> list[Profile]:
    """Each app profiled under each workload, one after the other."""
    profiles = []
    for app in APPS:
        server = Server(app, 1, backend.copy(1000, app.name), folder)
        try:
            server.wait_until_up()
            for name in workloads:
                profiles.append(profile(server, name, seconds, folder))
                backend.reset(server.database_url, 1000)
                server.wait_until_idle()
        finally:
            server.stop()
    return profiles


def table(profiles: list[Profile]) -> report.Table:
    """µs of worker CPU per request, by layer, one column per app and workload."""
    columns = [f"{p.app} {p.workload}" for p in profiles]
    layers = sorted(
        {layer for p in profiles for layer in p.layers}, key=lambda name: -max(p.layers.get(name, 0) for p in profiles)
    )
    rows = [
        ["requests/s", *(f"{p.per_second:,.0f}" for p in profiles)],
        ["worker CPU, µs a request", *(f"{p.cpu_us:,.0f}" for p in profiles)],
        [
            "outside the GIL (kernel, SQLite, wake-ups)",
            *(f"{max(p.cpu_us - p.python_us, 0):,.0f}" for p in profiles),
        ],
        ["Python (holding the GIL)", *(f"{p.python_us:,.0f}" for p in profiles)],
        *([f"- {layer}", *(f"{p.layers.get(layer, 0):,.0f}" for p in profiles)] for layer in layers),
    ]
    return report.Table("Worker CPU per request, µs, by layer (py-spy --gil, 1 worker, wrk -c16)", ["", *columns], rows)
