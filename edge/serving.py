"""Production serving: gunicorn's settings, read from the service's own (edge.settings).

    gunicorn -c python:edge.serving app:app

gunicorn supervises WORKERS uvicorn worker processes on HOST:PORT. Before they start, the
master migrates the database and adds the seed rows, once. A worker silent for WORKER_TIMEOUT
seconds is replaced. On SIGTERM the workers stop accepting, finish the requests in flight for up
to GRACEFUL_TIMEOUT seconds, close their database connections and exit, then the master exits.
Prometheus metrics from every worker are collected in PROMETHEUS_MULTIPROC_DIR (a new temporary
folder unless set), and a worker that exits is marked so that its live gauges drop out."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Any

from uvicorn_worker import UvicornWorker

from edge.settings import settings_or_exit

settings = settings_or_exit()
PR_SET_PDEATHSIG = 1
"""Linux's prctl option: the signal a process gets when its parent dies."""


class Worker(UvicornWorker):
    """uvicorn's gunicorn worker, without the `server` header that names it and its version, on
    the bounded HTTP protocol of edge.protocol, which on a busy worker accepts together the
    connections waiting on gunicorn's listening sockets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Imported only now, once on_starting has set PROMETHEUS_MULTIPROC_DIR: edge.protocol
        # imports prometheus_client, which chooses at import whether its values live in this
        # process's memory or in that folder, where a scrape of any worker sums them all.
        from edge.protocol import accepting_from, protocol_class

        http = protocol_class(settings.max_connections)
        self.CONFIG_KWARGS = {
            **UvicornWorker.CONFIG_KWARGS,
            "server_header": False,
            "http": http,
            # uvicorn's X-Forwarded-For middleware only where a proxy is trusted: with none, it
            # would parse the client's address on every request to find it untrusted.
            "proxy_headers": bool(settings.forwarded_allow_ips),
        }
        super().__init__(*args, **kwargs)
        if not self.config.is_ssl:  # with gunicorn's --certfile, uvicorn's own accepts do the TLS
            accepting_from(http, (listener.sock for listener in self.sockets))


bind = f"{settings.host}:{settings.port}"
workers = settings.workers
worker_class = "edge.serving.Worker"
timeout = round(settings.worker_timeout)
graceful_timeout = round(settings.graceful_timeout)
keepalive = 5
# Whose X-Forwarded-For to believe (the proxy in front): nobody's unless FORWARDED_ALLOW_IPS says.
forwarded_allow_ips = settings.forwarded_allow_ips or ""
accesslog = None  # the service logs each request itself, as JSON
errorlog = "-"
logger_class = "edge.gunicorn_logs.JsonLogger"  # gunicorn's own lines as JSON too
loglevel = settings.log_level.lower()
# gunicorn's control socket is one path per user by default, which a second instance takes over
# and the first to exit deletes; the service uses none.
control_socket_disable = True


_made: list[str] = []
"""The metrics folder on_starting made, which on_exit removes (in the master: the workers, forked
from it, must not)."""


def on_starting(_server: Any) -> None:
    """In the master, before any worker: the database brought up to date (once, however many
    workers start), then a clean metrics folder."""
    from edge.startup import prepare_database

    prepare_database(settings)  # first: a start that fails here leaves nothing behind
    given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    folder = given or tempfile.mkdtemp(prefix="study-sessions-metrics-")
    os.makedirs(folder, exist_ok=True)
    for stale in Path(folder).glob("*.db"):  # the last run's metric files; nothing else is touched
        stale.unlink(missing_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = folder
    if not given:
        _made.append(folder)


def post_fork(_server: Any, _worker: Any) -> None:
    """In each worker: SIGTERM it (it drains, then exits) if the master dies, however it died.
    Otherwise workers whose master was killed go on serving the port, and a new master cannot
    bind it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def child_exit(_server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(_server: Any) -> None:
    """In the master, once every worker is gone: the metrics folder it made goes too."""
    for folder in _made:
        shutil.rmtree(folder, ignore_errors=True)
