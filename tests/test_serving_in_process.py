"""edge/serving.py's gunicorn worker, made in process as gunicorn's master makes it (the service
under gunicorn, as a separate process, is tests/test_serving.py's)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.sock import TCPSocket

from edge.serving import Worker


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def worker(config: Config, listener: socket.socket) -> Worker:
    """A worker as gunicorn's master makes one, before it forks: on `listener`, made one of
    gunicorn's listening sockets (which takes the file descriptor it is given for its own)."""
    log = Logger(config)
    listening = TCPSocket(listener.getsockname(), config, log, fd=os.dup(listener.fileno()))
    return Worker(0, 0, [listening], None, 30, config, log)


def test_the_workers_protocol_accepts_what_waits_on_gunicorns_listening_sockets(listener: socket.socket):
    # The connections waiting behind a new one are accepted with it (edge/protocol.py), from the
    # sockets gunicorn listens on.
    made = worker(Config(), listener)

    assert [sock.getsockname() for sock in made.config.http.listeners] == [listener.getsockname()]


def test_with_tls_the_worker_leaves_every_accept_to_uvicorn(listener: socket.socket):
    # A connection accepted beside uvicorn would skip its TLS handshake: with gunicorn's
    # --certfile, nothing is accepted but by uvicorn.
    config = Config()
    config.set("certfile", "/etc/ssl/service.pem")
    config.set("keyfile", "/etc/ssl/service.key")

    made = worker(config, listener)

    assert made.config.is_ssl
    assert made.config.http.listeners == ()
