"""Faults, each bounded in requests and time, with traffic to 127.0.0.1 only: the production service
killed (SIGKILL to its master and workers) and stopped (SIGTERM) under load; its database stopped,
cut off, refused, unreadable and full; 200 creates at once through two services on one database.

Each test prints what it saw (`pytest -s`) and keeps the same figures in its `user_properties`
(which a JUnit XML report writes out); docs/reliability.md has them, and the commands."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, text

from tests.conftest import count_sessions
from tests.servers import BIN, GUNICORN, ROOT, free_port, processes, service

pytestmark = pytest.mark.live

SESSIONS = "/api/v1/study-sessions"
BODY = {"group_id": 1, "study_activity_id": 1}
CLIENTS = 8
PG_BIN = Path("/usr/lib/postgresql/15/bin")
CLOSED = {"ConnectError", "RemoteProtocolError", "ReadError", "WriteError"}
"""What a client sees of a server that is gone or going: refused, or closed under it."""


# --- processes -------------------------------------------------------------------------------


def kill_group(pgid: int) -> None:
    """SIGKILL to every process of group `pgid`, then wait (10 s at most) until none is left."""
    with suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while processes(2, pgid) and time.monotonic() < deadline:
        time.sleep(0.05)


def marked(marker: str) -> list[int]:
    """Live processes whose environment holds `marker` (NAME=value)."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with suppress(OSError):
            if marker.encode() in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
    return found


@contextmanager
def production(
    folder: Path, database_url: str, *, run_as: tuple[str, ...] = (), **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """tests.servers.service running the production command in a session of its own: `setsid`
    execs it (a child of pytest leads no process group, so setsid does not fork), so the pid is
    gunicorn's master and the process group is the master and its workers. Afterwards whatever
    it started is killed, found by a variable in its environment: workers outlive a master that
    was killed (see test_master_killed_alone_takes_its_workers_down)."""
    name, value = "FAULTS_TEST_SERVICE", uuid.uuid4().hex
    env = {"PROMETHEUS_MULTIPROC_DIR": str(folder / f"metrics-{value[:8]}"), **env, name: value}
    try:
        with service(folder, database_url, ("setsid", *run_as, *GUNICORN), **env) as (url, server):
            assert os.getpgid(server.pid) == server.pid, "not a group of its own: killpg would reach pytest"
            try:
                yield url, server
            finally:
                if server.poll() is None:
                    server.terminate()
                    with suppress(subprocess.TimeoutExpired):
                        server.wait(timeout=30)
    finally:
        left = marked(f"{name}={value}")
        for pid in left:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while left and time.monotonic() < deadline:
            left = [pid for pid in left if pid in marked(f"{name}={value}")]
            time.sleep(0.05)


def problem_503(response: httpx.Response) -> bool:
    return (
        response.status_code == 503
        and response.headers.get("content-type") == "application/problem+json"
        and response.headers.get("retry-after", "").isdigit()
        and response.json()["status"] == 503
    )


def report(request: pytest.FixtureRequest, title: str, **figures: Any) -> dict[str, Any]:
    """Prints `figures` under `title` (seen with pytest -s) and keeps them as the test's
    `user_properties`, where reports find them (JUnit XML writes them as properties)."""
    print(f"\n[{title}] " + ", ".join(f"{name}={value}" for name, value in figures.items()))
    request.node.user_properties.extend(figures.items())
    return figures


# --- clients ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    at: float
    kind: str
    status: int | None = None
    error: str | None = None
    id: int | None = None
    problem: bool = False
    """A 503 that is a problem with Retry-After."""


@dataclass
class Traffic:
    """`clients` threads, each on a keep-alive connection of its own, sending requests as fast as
    answers come until `stop()`: id-less creates, or (`reads`) a create then a read of what it
    made. With `until_closed`, a thread stops at its first transport error (the server is gone)."""

    url: str
    clients: int = CLIENTS
    reads: bool = False
    until_closed: bool = True
    limit: int = 5000
    answers: list[Answer] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self._threads), "a client hung"

    def _client(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            for _ in range(self.limit):
                if self._stop.is_set():
                    return
                answer = self._send(http, "create", partial(http.post, SESSIONS, json=BODY))
                if answer.error and self.until_closed:
                    return
                if self.reads and answer.id is not None:
                    self._send(http, "read", partial(http.get, f"{SESSIONS}/{answer.id}"))

    def _send(self, http: httpx.Client, kind: str, request: Callable[[], httpx.Response]) -> Answer:
        try:
            response = request()
            created = response.json()["id"] if kind == "create" and response.status_code == 201 else None
            answer = Answer(time.monotonic(), kind, response.status_code, id=created, problem=problem_503(response))
        except httpx.TransportError as error:
            answer = Answer(time.monotonic(), kind, error=type(error).__name__)
        with self._lock:
            self.answers.append(answer)
        return answer

    @property
    def acknowledged(self) -> set[int]:
        return {a.id for a in self.answers if a.id is not None}

    def statuses(self) -> Counter[int]:
        return Counter(a.status for a in self.answers if a.status is not None)

    def errors(self) -> Counter[str]:
        return Counter(a.error for a in self.answers if a.error is not None)


@contextmanager
def opened(database_url: str) -> Iterator[Engine]:
    """An engine of the test's own on `database_url`, disposed afterwards."""
    engine = create_engine(database_url)
    try:
        yield engine
    finally:
        engine.dispose()


def stored_ids(engine: Engine) -> set[int]:
    with engine.connect() as conn:
        return set(conn.execute(text("SELECT id FROM study_sessions")).scalars())


def counted_total(engine: Engine) -> int:
    """What the row_counts triggers say study_sessions holds."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT sum(n) FROM row_counts WHERE table_name = 'study_sessions'")).scalar_one())


def integrity(engine: Engine) -> str:
    """SQLite's own check of its file; PostgreSQL keeps its files consistent itself."""
    if engine.dialect.name != "sqlite":
        return "n/a"
    with engine.connect() as conn:
        return str(conn.execute(text("PRAGMA integrity_check")).scalar_one())


def read_back(url: str, ids: set[int]) -> tuple[list[int], int]:
    """The ids of `ids` that the service does not answer with a 200, and the total its list says."""

    def missing(chunk: list[int]) -> list[int]:
        with httpx.Client(base_url=url, timeout=10) as http:
            return [id for id in chunk if http.get(f"{SESSIONS}/{id}").status_code != 200]

    ordered = sorted(ids)
    with ThreadPoolExecutor(4) as pool:
        lost = [id for chunk in pool.map(missing, [ordered[i::4] for i in range(4)]) for id in chunk]
    total = httpx.get(f"{url}{SESSIONS}", params={"per_page": 1}).json()["total"]
    return lost, total


# --- 1 and 2: the service killed, and stopped, under load --------------------------------------


def test_crash_under_load_loses_no_acknowledged_session(
    tmp_path: Path, backend: str, database_url: str, engine: Engine, request: pytest.FixtureRequest
):
    with production(tmp_path, database_url, WORKERS="2") as (url, server), Traffic(url) as traffic:
        time.sleep(2)
        os.killpg(server.pid, signal.SIGKILL)  # the master and both workers at once, as a power cut would
        server.wait(timeout=10)
        kill_group(server.pid)
        left = processes(2, server.pid)
    acknowledged = traffic.acknowledged
    cut = sum(n for error, n in traffic.errors().items() if error != "ConnectError")  # possibly sent

    with production(tmp_path, database_url, WORKERS="2") as (url, _):
        lost, listed = read_back(url, acknowledged)
        stored = stored_ids(engine)
        in_doubt = stored - acknowledged
        doubtful_read, _ = read_back(url, in_doubt)
        counts = (listed, count_sessions(engine), counted_total(engine), len(stored))
        after = httpx.post(f"{url}{SESSIONS}", json=BODY)
    figures = report(
        request,
        f"crash {backend}",
        requests=len(traffic.answers),
        acknowledged=len(acknowledged),
        stored=len(stored),
        in_doubt=len(in_doubt),
        cut_in_flight=cut,
        integrity=integrity(engine),
    )

    assert left == []
    assert set(traffic.statuses()) == {201}
    assert set(traffic.errors()) <= CLOSED
    assert lost == [] and acknowledged <= stored
    assert len(in_doubt) <= cut <= CLIENTS  # only a request cut in flight may have stored unseen
    assert doubtful_read == []  # and what it stored is whole
    assert len(set(counts)) == 1, f"listed, count(*), row_counts, ids: {counts}"
    assert figures["integrity"] in ("ok", "n/a")
    assert after.status_code == 201 and after.json()["id"] not in stored


def test_graceful_stop_under_load_drains_and_exits_in_the_graceful_timeout_storing_every_201(
    tmp_path: Path, backend: str, database_url: str, engine: Engine, request: pytest.FixtureRequest
):
    graceful = 10
    with production(tmp_path, database_url, WORKERS="2", GRACEFUL_TIMEOUT=str(graceful)) as (url, server):
        with Traffic(url) as traffic:
            time.sleep(2)
            server.send_signal(signal.SIGTERM)  # the master only: it stops the workers
            signalled = time.monotonic()
            exit_code = server.wait(timeout=graceful + 5)
            drained = time.monotonic() - signalled
        left = processes(2, server.pid)
    acknowledged, stored = traffic.acknowledged, stored_ids(engine)
    after_signal = [a for a in traffic.answers if a.at > signalled]
    figures = report(
        request,
        f"graceful stop {backend}",
        requests=len(traffic.answers),
        acknowledged=len(acknowledged),
        stored=len(stored),
        in_doubt=len(stored - acknowledged),
        answered_201_after_sigterm=sum(a.status == 201 for a in after_signal),
        refused_or_closed=dict(traffic.errors()),
        drain_seconds=round(drained, 2),
    )

    assert exit_code == 0 and drained < graceful and left == []
    assert set(traffic.statuses()) == {201}  # no 5xx, nor anything else
    assert set(traffic.errors()) <= CLOSED
    assert all(a.at > signalled for a in traffic.answers if a.error)
    assert acknowledged == stored, f"{len(stored - acknowledged)} stored without a 201 to say so"
    assert figures["refused_or_closed"], "no client met the stopped server: the test did not test the stop"


def test_master_killed_alone_takes_its_workers_down(tmp_path: Path, request: pytest.FixtureRequest):
    with production(tmp_path, f"sqlite:///{tmp_path}/study.db", WORKERS="2", WORKER_TIMEOUT="5") as (url, server):
        workers = processes(1, server.pid)
        server.kill()
        server.wait(timeout=10)
        deadline = time.monotonic() + 8
        while (left := [w for w in workers if w in processes(2, server.pid)]) and time.monotonic() < deadline:
            time.sleep(0.2)
        served = None
        with suppress(httpx.TransportError):
            served = httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code
    report(
        request,
        "master killed alone",
        workers=len(workers),
        workers_left_after_8s=len(left),
        port_answers=served,
    )

    assert left == [] and served is None


# --- 3: the database out: PostgreSQL ----------------------------------------------------------


def need(condition: bool, reason: str) -> None:
    """Skips the test where the machine cannot stage the fault; in CI, fails it."""
    if not condition:
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI runs this test")
        pytest.skip(reason)


@dataclass(frozen=True)
class OwnPostgreSQL:
    """A PostgreSQL server of the test's own (not the machine's), that it may stop and start."""

    url: str
    """Its database `study`, which the service uses."""
    admin_url: str
    stop: Callable[[], None]
    start: Callable[[], None]


@pytest.fixture
def own_postgresql() -> Iterator[OwnPostgreSQL]:
    """initdb into a new folder, as `postgres` (PostgreSQL refuses root), served on a free port of
    127.0.0.1 with its socket in that folder; stopped (immediate) and removed afterwards."""
    need(
        os.geteuid() == 0 and (PG_BIN / "initdb").exists() and shutil.which("runuser") is not None,
        f"a PostgreSQL of its own needs root, runuser and {PG_BIN}",
    )
    home = Path(tempfile.mkdtemp(prefix="faults-postgresql-"))
    shutil.chown(home, "postgres")
    data, port = home / "data", free_port()
    as_postgres = ("runuser", "-u", "postgres", "--")

    def pg_ctl(*args: str) -> None:
        command = [*as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(data), "-w", "-t", "30", *args]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=40"
    try:
        subprocess.run(
            [*as_postgres, str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        pg_ctl("-l", str(home / "server.log"), "-o", options, "start")
        admin_url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("CREATE DATABASE study"))
        admin.dispose()
        yield OwnPostgreSQL(
            url=f"postgresql+psycopg://postgres@127.0.0.1:{port}/study",
            admin_url=admin_url,
            stop=lambda: pg_ctl("-m", "fast", "stop"),
            start=lambda: pg_ctl("-l", str(home / "server.log"), "-o", options, "start"),
        )
    finally:
        if (data / "postmaster.pid").exists():
            with suppress(subprocess.CalledProcessError):
                pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


def timed(request: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = request()
    return response, time.monotonic() - started


def each_operation(url: str, id: int) -> dict[str, Callable[[], httpx.Response]]:
    """A create, the reads, and the probes, each on a connection of its own (so on any worker)."""
    return {
        "create": lambda: httpx.post(f"{url}{SESSIONS}", json=BODY, timeout=30),
        "read": lambda: httpx.get(f"{url}{SESSIONS}/{id}", timeout=30),
        "list": lambda: httpx.get(f"{url}{SESSIONS}", timeout=30),
        "readyz": lambda: httpx.get(f"{url}/api/v1/readyz", timeout=30),
        "healthz": lambda: httpx.get(f"{url}/api/v1/healthz", timeout=30),
    }


def test_postgresql_stopped_is_a_quick_503_then_the_service_heals_when_it_is_back(
    tmp_path: Path, own_postgresql: OwnPostgreSQL, request: pytest.FixtureRequest
):
    pg, db_timeout, workers, pool_size = own_postgresql, 2, 2, 5
    with production(
        tmp_path, pg.url, WORKERS=str(workers), DB_POOL_SIZE=str(pool_size), DB_TIMEOUT=str(db_timeout)
    ) as (url, _):
        with Traffic(url, reads=True, until_closed=False) as busy:
            time.sleep(1)  # every pooled connection of both workers is now open
        first = min(busy.acknowledged)
        pg.stop()  # fast: its sessions are ended, new connections are refused
        down = [(name, *timed(send)) for _ in range(3) for name, send in each_operation(url, first).items()]

        pg.start()
        back = time.monotonic()
        recovery: list[tuple[str, httpx.Response]] = []
        while time.monotonic() - back < 15 and [r.status_code for _, r in recovery[-2:]] != [201, 200]:
            recovery += [(name, each_operation(url, first)[name]()) for name in ("create", "readyz")]
        healed_in = time.monotonic() - back
        then = [(name, send()) for _ in range(12) for name, send in each_operation(url, first).items()]
        created = busy.acknowledged | {r.json()["id"] for _, r in recovery + then if r.status_code == 201}
    with opened(pg.url) as engine:
        stored = stored_ids(engine)
    after = [response for _, response in recovery + then]
    figures = report(
        request,
        "postgresql stopped",
        answers_while_down={
            name: sorted({r.status_code for n, r, _ in down if n == name}) for name in each_operation("", 0)
        },
        slowest_answer_while_down=round(max(seconds for *_, seconds in down), 2),
        recovered_in_seconds=round(healed_in, 2),
        answers_after_it_was_back=dict(Counter(r.status_code for r in after)),
        acknowledged=len(created),
        stored=len(stored),
    )

    for name, response, seconds in down:
        assert seconds < db_timeout + 2, f"{name} took {seconds:.1f} s"
        if name == "healthz":
            assert response.status_code == 200
        else:
            assert problem_503(response), f"{name}: {response.status_code} {response.text[:200]}"
    assert [r.status_code for _, r in recovery[-2:]] == [201, 200], f"not healed in 15 s: {figures}"
    assert all(r.status_code in (200, 201) or problem_503(r) for r in after)
    # A pooled connection that the stop ended is found dead when it is next used: one 503 each at
    # most, then a new one is opened. So the 503s after the restart are bounded by the connections
    # held, and every request after them succeeds.
    assert sum(r.status_code == 503 for r in after) <= workers * pool_size
    assert created <= stored


def test_postgresql_connections_cut_under_load_cost_one_503_each_at_most(
    tmp_path: Path, own_postgresql: OwnPostgreSQL, request: pytest.FixtureRequest
):
    pg = own_postgresql
    admin = create_engine(pg.admin_url, isolation_level="AUTOCOMMIT")
    terminate = text(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = 'study'"
    )
    cut = 0
    with production(tmp_path, pg.url, WORKERS="2", DB_TIMEOUT="2") as (url, _):
        with Traffic(url, reads=True, until_closed=False) as traffic:
            for _ in range(2):
                time.sleep(1)
                with admin.connect() as conn:  # what a restart of the server or a cut network does
                    cut += conn.execute(terminate).scalar_one()
            time.sleep(1)
        first = min(traffic.acknowledged)
        then = [(name, send()) for _ in range(4) for name, send in each_operation(url, first).items()]
    admin.dispose()
    with opened(pg.url) as engine:
        stored = stored_ids(engine)
    acknowledged = traffic.acknowledged | {r.json()["id"] for name, r in then if r.status_code == 201}
    refused_creates = sum(a.kind == "create" and a.status == 503 for a in traffic.answers)
    figures = report(
        request,
        "postgresql connections cut",
        connections_cut=cut,
        answers=dict(Counter((a.kind, a.status or a.error) for a in traffic.answers)),
        answers_after=dict(Counter(r.status_code for _, r in then)),
        acknowledged=len(acknowledged),
        stored=len(stored),
        in_doubt=len(stored - acknowledged),
    )

    assert cut > 0 and traffic.errors() == Counter()
    assert set(traffic.statuses()) <= {200, 201, 503}
    assert all(a.problem for a in traffic.answers if a.status == 503)
    assert all(r.status_code in (200, 201) or problem_503(r) for _, r in then)
    # A cut connection fails the one transaction that meets it, and a new one is opened: one 503
    # per connection cut at most, however many requests follow (`then` meets the ones left).
    assert traffic.statuses()[503] + sum(r.status_code == 503 for _, r in then) <= cut, figures
    assert acknowledged <= stored
    assert len(stored - acknowledged) <= refused_creates  # a commit whose answer the cut lost


@contextmanager
def asgi_app(folder: Path, database_url: str, **env: str) -> Iterator[str]:
    """`uvicorn app:app`, the README's other way to serve, which does not migrate (so it starts
    without a database), on a free port; its URL once /healthz answers."""
    port = free_port()
    environment = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING", "VALIDATE_RESPONSES": "1", **env}
    command = (BIN / "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    with (folder / f"asgi-{port}.log").open("w") as log:
        server = subprocess.Popen(
            command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                with suppress(httpx.TransportError):
                    if httpx.get(f"{url}/api/v1/healthz", timeout=1).status_code == 200:
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"uvicorn did not start: {(folder / f'asgi-{port}.log').read_text()[-2000:]}")
                time.sleep(0.1)
            yield url
        finally:
            server.terminate()
            with suppress(subprocess.TimeoutExpired):
                server.wait(timeout=30)
            kill_group(server.pid)


def test_postgresql_refusing_connections_stops_the_production_command_and_is_a_quick_503(
    tmp_path: Path, request: pytest.FixtureRequest
):
    refused = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/study"  # nothing listens there
    env = {
        **os.environ,
        "DATABASE_URL": refused,
        "PORT": str(free_port()),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    log = tmp_path / "gunicorn.log"
    started = time.monotonic()
    with log.open("w") as output:  # it migrates before it serves, so it stops, saying why
        stopped = subprocess.run(GUNICORN, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT, timeout=60)
    exited_in = time.monotonic() - started
    with asgi_app(tmp_path, refused, DB_TIMEOUT="2") as url:
        answers = [(name, *timed(send)) for _ in range(2) for name, send in each_operation(url, 1).items()]
    figures = report(
        request,
        "postgresql refusing",
        production_exit_code=stopped.returncode,
        production_exited_in_seconds=round(exited_in, 2),
        answers={name: sorted({r.status_code for n, r, _ in answers if n == name}) for name in each_operation("", 0)},
        slowest_answer=round(max(seconds for *_, seconds in answers), 2),
    )

    assert stopped.returncode != 0 and exited_in < 20
    assert "Connection refused" in log.read_text()
    for name, response, seconds in answers:
        assert seconds < 1, f"{name} took {seconds:.1f} s: a refused connection should fail at once"
        assert response.status_code == 200 if name == "healthz" else problem_503(response), figures


# --- 3: the database out: SQLite --------------------------------------------------------------

WITHOUT_DAC = ("setpriv", "--bounding-set=-dac_override,-dac_read_search")
"""root, less the capabilities that let it open any file whatever its mode: so that a chmod 000
stops the service as it stops a service run by an unprivileged user."""


def restart_workers(server: subprocess.Popen[bytes], url: str) -> None:
    """SIGKILL to the master's workers (a crash), then wait until new ones answer /healthz."""
    old = set(processes(1, server.pid))
    for worker in old:
        os.kill(worker, signal.SIGKILL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(processes(1, server.pid)) - old
        with suppress(httpx.TransportError):
            if new and httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    pytest.fail("no new worker came up")


def heal(url: str, first: int, seconds: float = 10) -> tuple[list[tuple[str, httpx.Response]], float]:
    """Creates and readiness probes until one of each succeeds, for `seconds` at most."""
    started, tries = time.monotonic(), list[tuple[str, httpx.Response]]()
    while time.monotonic() - started < seconds and [r.status_code for _, r in tries[-2:]] != [201, 200]:
        tries += [(name, each_operation(url, first)[name]()) for name in ("create", "readyz")]
        time.sleep(0.05)
    return tries, time.monotonic() - started


def test_sqlite_file_made_unreadable_is_a_503_where_it_is_opened_and_heals_when_readable(
    tmp_path: Path, request: pytest.FixtureRequest
):
    # What really stops SQLite: the service runs as root, which opens a file whatever its mode, so
    # it runs without CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH (as an unprivileged user would). And a
    # connection already open keeps its file descriptors: a chmod, a rename, a file or directory put
    # in its place change nothing for it (SQLite reads and writes through them). The fault shows
    # where a connection is opened: here, in the workers that replace crashed ones.
    db, db_timeout = tmp_path / "study.db", 2
    run_as = WITHOUT_DAC if os.geteuid() == 0 else ()
    with production(tmp_path, f"sqlite:///{db}", run_as=run_as, WORKERS="1", DB_TIMEOUT="2") as (url, server):
        first = httpx.post(f"{url}{SESSIONS}", json=BODY).json()["id"]
        operations = each_operation(url, first)
        db.chmod(0)
        opened_before = [operations[name]() for name in ("create", "read")]
        restart_workers(server, url)
        down = [(name, *timed(send)) for _ in range(2) for name, send in operations.items()]
        db.chmod(0o644)
        tries, healed_in = heal(url, first)
    answers = [*opened_before, *(r for _, r, _ in down), *(r for _, r in tries)]
    acknowledged = {first} | {r.json()["id"] for r in answers if r.status_code == 201}
    with opened(f"sqlite:///{db}") as engine:
        stored, counted, check = stored_ids(engine), counted_total(engine), integrity(engine)
    figures = report(
        request,
        "sqlite unreadable",
        answers_of_connections_opened_before=[r.status_code for r in opened_before],
        answers_of_new_workers={name: sorted({r.status_code for n, r, _ in down if n == name}) for name in operations},
        slowest_answer=round(max(seconds for *_, seconds in down), 2),
        healed_in_seconds=round(healed_in, 2),
        acknowledged=len(acknowledged),
        stored=len(stored),
    )

    assert [r.status_code for r in opened_before] == [201, 200], figures
    for name, response, seconds in down:
        assert seconds < db_timeout + 2
        assert response.status_code == 200 if name == "healthz" else problem_503(response), figures
    assert [r.status_code for _, r in tries[-2:]] == [201, 200], figures
    assert stored == acknowledged and counted == len(stored) and check == "ok"


def test_sqlite_file_moved_away_is_a_503_makes_nothing_and_heals_when_it_is_back(
    tmp_path: Path, request: pytest.FixtureRequest
):
    db, away = tmp_path / "study.db", tmp_path / "study.db.away"
    with production(tmp_path, f"sqlite:///{db}", WORKERS="1", DB_TIMEOUT="2") as (url, server):
        acknowledged = {httpx.post(f"{url}{SESSIONS}", json=BODY).json()["id"] for _ in range(3)}
        db.rename(away)  # a volume not mounted yet, a restore from backup in progress
        restart_workers(server, url)
        down = {name: send() for name, send in each_operation(url, min(acknowledged)).items()}
        made = db.exists()
        with suppress(FileNotFoundError):
            db.unlink()
        away.rename(db)
        tries, _ = heal(url, min(acknowledged), seconds=5)
    with opened(f"sqlite:///{db}") as engine:
        stored = stored_ids(engine)
    report(
        request,
        "sqlite moved away",
        answers={name: r.status_code for name, r in down.items()},
        new_file_made=made,
        healed=[r.status_code for _, r in tries[-2:]] == [201, 200],
        acknowledged=len(acknowledged),
        lost=len(acknowledged - stored),
    )

    assert all(problem_503(r) for name, r in down.items() if name != "healthz"), {n: r.text for n, r in down.items()}
    assert not made
    assert [r.status_code for _, r in tries[-2:]] == [201, 200]
    assert acknowledged <= stored


def test_sqlite_file_replaced_by_a_non_database_is_a_503_and_heals_when_it_is_back(
    tmp_path: Path, request: pytest.FixtureRequest
):
    db, away = tmp_path / "study.db", tmp_path / "study.db.away"
    with production(tmp_path, f"sqlite:///{db}", WORKERS="1", DB_TIMEOUT="2") as (url, server):
        acknowledged = {httpx.post(f"{url}{SESSIONS}", json=BODY).json()["id"] for _ in range(3)}
        with opened(f"sqlite:///{db}") as engine, engine.connect() as conn:
            # Everything into the file itself first: what is in the -wal belongs with the file
            # (the test above shows what moving one without the other does).
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        db.rename(away)
        db.write_text("not a database\n" * 300)
        restart_workers(server, url)
        down = {name: send() for name, send in each_operation(url, min(acknowledged)).items()}
        away.replace(db)
        tries, _ = heal(url, min(acknowledged))
    with opened(f"sqlite:///{db}") as engine:
        stored = stored_ids(engine)
    report(
        request,
        "sqlite not a database",
        answers={name: r.status_code for name, r in down.items()},
        healed=[r.status_code for _, r in tries[-2:]] == [201, 200],
        acknowledged=len(acknowledged),
        lost=len(acknowledged - stored),
    )

    assert all(problem_503(r) for name, r in down.items() if name != "healthz"), {n: r.text for n, r in down.items()}
    assert [r.status_code for _, r in tries[-2:]] == [201, 200]
    assert acknowledged <= stored


@contextmanager
def small_disk(size: str) -> Iterator[Path]:
    """A tmpfs of `size` of the test's own, unmounted and removed afterwards."""
    need(os.geteuid() == 0, "mounting a tmpfs needs root")
    mountpoint = Path(tempfile.mkdtemp(prefix="faults-disk-"))
    try:
        command = ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(mountpoint)]
        mounted = subprocess.run(command, check=False, capture_output=True, text=True)
        need(mounted.returncode == 0, f"mount -t tmpfs failed here: {mounted.stderr.strip()}")
        try:
            yield mountpoint
        finally:
            if subprocess.run(["umount", str(mountpoint)], check=False).returncode != 0:
                subprocess.run(["umount", "--lazy", str(mountpoint)], check=True)
    finally:
        mountpoint.rmdir()


def fill(disk: Path, leave: int) -> Path:
    """A file that takes all of `disk` but `leave` bytes."""
    filler = disk / "filler"
    stat = os.statvfs(disk)
    with filler.open("wb") as output, suppress(OSError):
        output.write(b"\0" * max(0, stat.f_bavail * stat.f_frsize - leave))
    return filler


def test_sqlite_disk_full_is_a_503_for_writes_reads_go_on_and_writes_resume_when_space_is_freed(
    tmp_path: Path, request: pytest.FixtureRequest
):
    with small_disk("2m") as disk:
        database_url = f"sqlite:///{disk}/study.db"
        with (
            production(tmp_path, database_url, WORKERS="2", DB_TIMEOUT="2") as (url, _),
            httpx.Client(base_url=url) as http,
        ):
            acknowledged = {http.post(SESSIONS, json=BODY).json()["id"] for _ in range(5)}
            filler = fill(disk, leave=128 * 1024)
            creates = []
            for _ in range(400):  # the -wal grows by a few pages a commit: it meets the end of the disk
                creates.append(http.post(SESSIONS, json=BODY))
                if creates[-1].status_code != 201:
                    break
            creates += [http.post(SESSIONS, json=BODY) for _ in range(3)]
            acknowledged |= {r.json()["id"] for r in creates if r.status_code == 201}
            reads = [http.get(f"{SESSIONS}/{min(acknowledged)}"), http.get(SESSIONS), http.get("/api/v1/readyz")]
            listed_while_full = (reads[1].json().get("total"), len(acknowledged))
            filler.unlink()
            after = [http.post(SESSIONS, json=BODY) for _ in range(5)]
            acknowledged |= {r.json()["id"] for r in after if r.status_code == 201}
        with opened(database_url) as engine:
            stored, counted, check = stored_ids(engine), counted_total(engine), integrity(engine)
    full = [r for r in creates if r.status_code != 201]
    figures = report(
        request,
        "sqlite disk full",
        creates_before_full=len(creates) - len(full),
        answers_while_full=[r.status_code for r in full],
        reads_while_full=[r.status_code for r in reads],
        creates_after_space_freed=[r.status_code for r in after],
        acknowledged=len(acknowledged),
        stored=len(stored),
        integrity=check,
    )

    assert full and all(problem_503(r) for r in full), figures  # SQLITE_FULL is "unavailable"
    assert [r.status_code for r in reads] == [200, 200, 200]
    assert listed_while_full[0] == listed_while_full[1]
    assert [r.status_code for r in after] == [201] * 5, figures  # no restart needed
    assert stored == acknowledged and counted == len(stored) and check == "ok"


# --- 4: load ---------------------------------------------------------------------------------


def test_200_creates_at_once_through_two_services_on_one_database_get_200_ids(
    tmp_path: Path, backend: str, database_url: str, engine: Engine, request: pytest.FixtureRequest
):
    at_once = 200
    with ExitStack() as stack:
        urls = [
            # A long DB_TIMEOUT: this is about ids and rows under contention, not about the latency
            # of 200 at once on a shared 2-core machine (reported below), where 503s would be fair.
            stack.enter_context(production(tmp_path, database_url, WORKERS="2", DB_TIMEOUT="30"))[0]
            for _ in range(2)
        ]
        start = threading.Barrier(at_once)

        def create(number: int) -> tuple[httpx.Response, float]:
            start.wait(timeout=60)
            return timed(lambda: httpx.post(f"{urls[number % 2]}{SESSIONS}", json=BODY, timeout=60))

        with ThreadPoolExecutor(at_once) as pool:
            answers = list(pool.map(create, range(at_once)))
    ids = [r.json()["id"] for r, _ in answers if r.status_code == 201]
    figures = report(
        request,
        f"200 at once {backend}",
        statuses=dict(Counter(r.status_code for r, _ in answers)),
        distinct_ids=len(set(ids)),
        rows=count_sessions(engine),
        median_seconds=round(sorted(seconds for _, seconds in answers)[at_once // 2], 2),
        slowest_seconds=round(max(seconds for _, seconds in answers), 2),
    )

    assert figures["statuses"] == {201: at_once}
    assert len(set(ids)) == at_once == count_sessions(engine) == counted_total(engine)
