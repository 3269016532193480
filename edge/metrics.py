"""Prometheus metrics, with the official client. Under gunicorn each worker process writes its
figures to PROMETHEUS_MULTIPROC_DIR (edge.serving sets it) and a scrape, answered by whichever
worker gets it, sums them all; without it (one process: `python app.py`, the tests) they live in
the process."""

from __future__ import annotations

import functools
import os
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
MEDIA_TYPE = "text/plain"
"""Prometheus reads a plain text/plain as its text format 0.0.4, which generate_latest writes."""
UNROUTED = "none"
"""The operation label of a request that matched no operation (a 404, a 405, the docs)."""

REGISTRY = CollectorRegistry()

REQUESTS = Counter(
    "http_requests_total", "Requests answered, by operation and status.", ["operation", "status"], registry=REGISTRY
)
DURATION = Histogram(
    "http_request_duration_seconds",
    "Time from the request's arrival to the end of its response, by operation.",
    ["operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
    registry=REGISTRY,
)
CONNECTIONS = Gauge(
    "db_connections",
    "Database connections of the service's workers: open, and in use by a transaction.",
    ["state"],
    multiprocess_mode="livesum",
    registry=REGISTRY,
)
CONNECTIONS_MAX = Gauge(
    "db_connections_max",
    "The most database connections the service's workers may open (DB_POOL_SIZE times workers).",
    multiprocess_mode="livesum",
    registry=REGISTRY,
)


@functools.cache
def requests_of(operation: str, status: int) -> Any:
    """The request counter of `operation` and `status`, looked up once (a handful of each)."""
    return REQUESTS.labels(operation, str(status))


@functools.cache
def duration_of(operation: str) -> Any:
    """The request duration histogram of `operation`, looked up once."""
    return DURATION.labels(operation)


def observe_connections(in_use: int, open_: int) -> None:
    """What storage.database reports as its connections change."""
    CONNECTIONS.labels("in_use").set(in_use)
    CONNECTIONS.labels("open").set(open_)


def exposition() -> tuple[bytes, str]:
    """Every metric in Prometheus's text format 0.0.4 (what every Prometheus reads; the spec names
    it), summed over the workers, and its media type."""
    if MULTIPROCESS:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), MEDIA_TYPE
    return generate_latest(REGISTRY), MEDIA_TYPE
