#!/usr/bin/env python3
"""Shows the service running on two hosts over one shared PostgreSQL database, as root:

    ./scripts/two_hosts.py

Host A and host B are network namespaces of this run's own, joined by veth pairs to a bridge it
makes on a free private /24 (10.213.N.0/24). They cannot reach 127.0.0.1:5432, so PgBouncer
(Debian's package, installed with apt-get where missing) listens on the bridge's address in
transaction pooling mode and forwards to it, for a database two_hosts_<pid> that this run makes,
migrates and seeds. Each host runs the production command (gunicorn -c python:edge.serving).

From outside both hosts it then checks that a session created through either host reads back
through the other, that creates on both at once from several threads all succeed with distinct
ids, that both hosts list the same total, and that each host's /metrics counts its own requests.
It prints a short report and exits 0 when all of that holds, 1 when something does not (saying
what). Whatever happens (a failure, Ctrl-C, SIGTERM, or its 120 s budget running out) it stops
what it started and removes what it made; the budget starts after any apt-get install.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import ipaddress
import json
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

try:
    import httpx
    import psycopg
    from psycopg import sql
except ModuleNotFoundError:  # started by the system's python3: go on under the project's
    _python = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
    if _python.exists() and not os.environ.get("TWO_HOSTS_REEXEC"):
        os.environ["TWO_HOSTS_REEXEC"] = "1"
        os.execv(_python, [str(_python), str(Path(__file__).resolve()), *sys.argv[1:]])
    sys.exit("two-hosts needs .venv/ with the test extra (httpx, psycopg): run ./scripts/dev test once first.")

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"

PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
"""The PostgreSQL server both hosts share (through PgBouncer), and who they are on it."""
PG_ADMIN_DATABASE = "test"
"""Where this run connects to make and drop its own database."""
NETNS = Path("/run/netns")
SUBNETS = ipaddress.IPv4Network("10.213.0.0/16")
"""Where this run's /24 is taken from: the first one that no address or route here overlaps."""
PGBOUNCER_PORT = 6432
SERVICE_PORT = 8000
WORKERS = 2
BUDGET = 120
"""Seconds the whole run may take, from making the network to the last check."""
READY_WITHIN = 60.0
STOP_WITHIN = 30.0
"""Seconds a host may take to drain and exit on SIGTERM (its GRACEFUL_TIMEOUT is 20)."""
CROSS_READS = 5
"""Sessions created through each host and read back through the other."""
THREADS = 4
CREATES_PER_THREAD = 25
REQUEST_TIMEOUT = 10.0
CREATE = "/api/v1/study-sessions"

MIGRATE = """
import os
from storage import migrate
from storage.engine import make_engine
engine = make_engine(os.environ["DATABASE_URL"])
migrate.upgrade(engine)
migrate.seed(engine)
engine.dispose()
"""


class Failed(Exception):
    """A step that could not be done, or a check that did not hold."""


class Interrupted(BaseException):
    """SIGTERM, or the budget ran out: stop where we are and clean up."""


def say(text: str) -> None:
    print(f"==> {text}", flush=True)


def report(text: str) -> None:
    print(text, flush=True)


def expect(holds: bool, message: str) -> None:
    if not holds:
        raise Failed(message)


def run(*command: str | Path, timeout: float = 30.0) -> str:
    """`command`'s output; Failed, with what it printed, where it exits non-zero."""
    result = subprocess.run(
        [str(c) for c in command], capture_output=True, text=True, timeout=timeout, check=False, cwd=ROOT
    )
    if result.returncode != 0:
        raise Failed(f"`{' '.join(str(c) for c in command)}` exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def ip_json(*args: str) -> list[dict[str, Any]]:
    answer: list[dict[str, Any]] = json.loads(run("ip", "-j", *args) or "[]")
    return answer


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class Undo:
    """What this run made, to unmake in reverse order, each step then checked by asking whether
    what it removed `remains`; a step that fails is reported and the others still run."""

    def __init__(self) -> None:
        self.steps: list[tuple[str, Callable[[], object], Callable[[], bool]]] = []
        self.done: list[str] = []
        self.failures: list[str] = []

    def push(self, what: str, step: Callable[[], object], remains: Callable[[], bool]) -> None:
        """Pushed before the thing is made, so that an interruption in between leaves nothing:
        `step` does nothing where there is nothing (yet) to remove."""
        self.steps.append((what, step, remains))

    def run_all(self) -> bool:
        while self.steps:
            what, step, remains = self.steps.pop()
            try:
                step()
                if remains():
                    raise Failed("it is still there")
                self.done.append(what)
            except Exception as error:  # noqa: BLE001 - every cleanup step gets its turn
                self.failures.append(what)
                print(f"two-hosts: cleanup could not {what}: {error}", file=sys.stderr, flush=True)
        return not self.failures


# --- PgBouncer, before the clock starts ------------------------------------------------------


def ensure_pgbouncer() -> str:
    """The pgbouncer program; Debian's package is installed where it is missing."""
    found = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if found:
        return found
    if not shutil.which("apt-get"):
        sys.exit("two-hosts needs PgBouncer, and there is no apt-get here: install pgbouncer, then run again.")
    say("PgBouncer is missing: installing Debian's package pgbouncer with apt-get")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "pgbouncer"]):
        say(" ".join(command))
        if subprocess.run(command, env=env, timeout=600, check=False).returncode != 0:
            sys.exit(f"two-hosts: `{' '.join(command)}` failed; install pgbouncer, then run again.")
    found = shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if not found:
        sys.exit("two-hosts: apt-get installed pgbouncer, yet there is no pgbouncer program.")
    return found


# --- The network ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Host:
    name: str  # "A" or "B"
    namespace: str
    veth: str  # the root namespace's end; the host's end is its eth0
    address: str

    @property
    def url(self) -> str:
        return f"http://{self.address}:{SERVICE_PORT}"


@dataclass(frozen=True)
class Network:
    bridge: str
    gateway: str  # the bridge's address, where PgBouncer listens
    subnet: ipaddress.IPv4Network
    hosts: tuple[Host, Host]


def used_networks() -> list[ipaddress.IPv4Network]:
    """Every IPv4 network that an address or a route (besides the default one) here covers."""
    used: list[ipaddress.IPv4Network] = []
    for link in ip_json("-4", "addr"):
        for address in link.get("addr_info", []):
            used.append(ipaddress.IPv4Network(f"{address['local']}/{address['prefixlen']}", strict=False))
    for route in ip_json("-4", "route", "show", "table", "all"):
        try:
            used.append(ipaddress.IPv4Network(route["dst"], strict=False))
        except (KeyError, ValueError):  # "default", and kinds of route that name no network
            continue
    return used


def make_network(pid: int, undo: Undo) -> Network:
    """The bridge on a /24 nobody here uses, and hosts A and B on it, each with loopback up."""
    bridge = f"ssbr{pid}"
    names = {n: (f"ss-host-{n.lower()}-{pid}", f"ssv{n.lower()}{pid}") for n in "AB"}
    for namespace, veth in names.values():
        for link in (bridge, veth):
            expect(not link_exists(link), f"{link} exists already (left by a killed run?): ip link delete {link}")
        expect(
            not Path(f"/run/netns/{namespace}").exists(),
            f"the namespace {namespace} exists already (left by a killed run?): ip netns delete {namespace}",
        )

    # Another run choosing at the same time must see our bridge's address before it chooses: the
    # folder that `ip netns` keeps its namespaces in is the lock (a lock file would be left over).
    NETNS.mkdir(parents=True, exist_ok=True)
    lock = os.open(NETNS, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        used = used_networks()
        subnets = list(SUBNETS.subnets(new_prefix=24))
        start = pid % len(subnets)
        subnet = next((s for s in subnets[start:] + subnets[:start] if not any(s.overlaps(u) for u in used)), None)
        if subnet is None:
            raise Failed(f"no /24 in {SUBNETS} is free here")
        gateway, *addresses = (str(a) for a in subnet.hosts())
        undo.push(f"deleted the bridge {bridge}", lambda: delete_link(bridge), lambda: link_exists(bridge))
        run("ip", "link", "add", bridge, "type", "bridge")
        run("ip", "addr", "add", f"{gateway}/{subnet.prefixlen}", "dev", bridge)
    finally:
        os.close(lock)
    run("ip", "link", "set", bridge, "up")

    places = zip(names.items(), addresses[:2], strict=True)
    hosts = [Host(name, namespace, veth, address) for (name, (namespace, veth)), address in places]
    for host in hosts:
        undo.push(
            f"deleted the namespace {host.namespace}",
            functools.partial(delete_namespace, host.namespace),
            (NETNS / host.namespace).exists,
        )
        run("ip", "netns", "add", host.namespace)
        undo.push(
            f"deleted the veth pair {host.veth}",
            functools.partial(delete_link, host.veth),
            functools.partial(link_exists, host.veth),
        )
        run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        run("ip", "link", "set", host.veth, "master", bridge)
        run("ip", "link", "set", host.veth, "up")
        run("ip", "-n", host.namespace, "addr", "add", f"{host.address}/{subnet.prefixlen}", "dev", "eth0")
        run("ip", "-n", host.namespace, "link", "set", "eth0", "up")
        run("ip", "-n", host.namespace, "link", "set", "lo", "up")
    return Network(bridge, gateway, subnet, (hosts[0], hosts[1]))


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def delete_link(name: str) -> None:
    """Deletes a link (a veth pair by its root end, both ends at once), unless it is gone already."""
    if link_exists(name):
        run("ip", "link", "delete", name)


def delete_namespace(name: str) -> None:
    if Path(NETNS / name).exists():
        run("ip", "netns", "delete", name)


# --- The database and PgBouncer ----------------------------------------------------------------


def admin() -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, dbname=PG_ADMIN_DATABASE, autocommit=True, connect_timeout=5
    )


def make_database(name: str, undo: Undo) -> None:
    expect(
        not database_exists(name), f"the database {name} exists already (left by a killed run?): DROP DATABASE {name}"
    )
    undo.push(f"dropped the database {name}", lambda: drop_database(name), lambda: database_exists(name))
    with admin() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def database_exists(name: str) -> bool:
    with admin() as conn:
        return conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is not None


def drop_database(name: str) -> None:
    with admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def migrate(url: str) -> None:
    """Brings the database to the newest schema and adds the seed rows, once, before any host."""
    result = subprocess.run(
        [str(BIN / "python"), "-c", MIGRATE],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    expect(result.returncode == 0, f"migrating {url} failed:\n{result.stderr[-3000:]}")


def free_port(address: str, preferred: int) -> int:
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind((address, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise Failed(f"no free port on {address}")


@dataclass
class Process:
    """A process of this run's, in a session of its own, so that Ctrl-C on the terminal reaches
    this script only and the script decides how each process stops."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def remains(self) -> bool:
        """Whether it, or any process it started, still runs."""
        try:
            os.killpg(self.popen.pid, 0)
        except ProcessLookupError:
            return self.alive()
        return True

    def stop(self, within: float) -> tuple[int, float]:
        """SIGTERM, then up to `within` seconds to exit (SIGKILL to its group after that); its exit
        status and the seconds it took. Stopping a stopped process does nothing."""
        started = time.monotonic()
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=within)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        # What it started and left behind (workers of a killed master) goes too.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        return self.popen.returncode, time.monotonic() - started


def start_pgbouncer(program: str, folder: Path, network: Network, database: str, undo: Undo) -> int:
    """PgBouncer on the bridge's address, as the postgres user (it refuses root), with its files
    in `folder`; the port it listens on."""
    folder.mkdir(mode=0o700)
    port = free_port(network.gateway, PGBOUNCER_PORT)
    (folder / "userlist.txt").write_text(f'"{PG_USER}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{database} = host={PG_HOST} port={PG_PORT} dbname={database} user={PG_USER}

[pgbouncer]
listen_addr = {network.gateway}
listen_port = {port}
unix_socket_dir = {folder}
auth_type = trust
auth_file = {folder}/userlist.txt
pool_mode = transaction
default_pool_size = 10
max_client_conn = 200
query_timeout = 10
pidfile = {folder}/pgbouncer.pid
"""
    )
    for path in (folder, *folder.iterdir()):
        shutil.chown(path, "postgres", "postgres")
    # Its log is what it writes to stderr: a `logfile` gets nothing of a configuration it refuses.
    with (folder / "pgbouncer.log").open("wb") as out:
        popen = subprocess.Popen(
            [program, str(folder / "pgbouncer.ini")],
            user="postgres",
            group="postgres",
            extra_groups=[],
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/bin")},
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    bouncer = Process("PgBouncer", popen, folder / "pgbouncer.log")
    undo.push("stopped PgBouncer", lambda: bouncer.stop(10), bouncer.remains)

    deadline = time.monotonic() + 15
    while True:
        expect(bouncer.alive(), f"PgBouncer exited {popen.returncode}:\n{tail(folder / 'pgbouncer.log')}")
        try:
            with psycopg.connect(
                host=network.gateway,
                port=port,
                user=PG_USER,
                dbname=database,
                connect_timeout=2,
                prepare_threshold=None,
            ) as conn:
                conn.execute("SELECT 1")
            return port
        except psycopg.OperationalError as error:
            expect(time.monotonic() < deadline, f"PgBouncer does not answer: {error}\n{tail(bouncer.log)}")
            time.sleep(0.2)


# --- The hosts -------------------------------------------------------------------------------


def start_service(host: Host, database_url: str, folder: Path, undo: Undo) -> Process:
    """The production command, in the host's namespace; its log in `folder`."""
    metrics = folder / f"metrics-{host.name.lower()}"  # in the run's folder, so it goes with it
    log = folder / f"host-{host.name.lower()}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [
                "ip", "netns", "exec", host.namespace, "env",
                f"DATABASE_URL={database_url}", f"HOST={host.address}", f"PORT={SERVICE_PORT}",
                f"WORKERS={WORKERS}", "LOG_LEVEL=WARNING", f"PROMETHEUS_MULTIPROC_DIR={metrics}",
                str(BIN / "gunicorn"), "-c", "python:edge.serving", "app:app",
            ],
            env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/bin")},
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    service = Process(f"host {host.name}", popen, log)
    undo.push(f"stopped host {host.name}", lambda: service.stop(STOP_WITHIN), service.remains)
    return service


def client(host: Host) -> httpx.Client:
    # trust_env=False: a proxy set in the environment must not carry these requests off the machine.
    return httpx.Client(base_url=host.url, timeout=REQUEST_TIMEOUT, trust_env=False)


def wait_until_ready(hosts: dict[Host, Process]) -> float:
    """Seconds until every host answered 200 on /readyz."""
    started = time.monotonic()
    waiting = dict(hosts)
    clients = {host: client(host) for host in hosts}
    try:
        while waiting:
            for host, service in list(waiting.items()):
                expect(service.alive(), f"host {host.name} exited {service.popen.returncode}:\n{tail(service.log)}")
                with contextlib.suppress(httpx.TransportError):
                    if clients[host].get("/api/v1/readyz", timeout=2).status_code == 200:
                        del waiting[host]
            if waiting:
                names = " and ".join(f"host {h.name}" for h in waiting)
                expect(time.monotonic() - started < READY_WITHIN, f"{names} not ready in {READY_WITHIN:.0f} s")
                time.sleep(0.25)
    finally:
        for c in clients.values():
            c.close()
    return time.monotonic() - started


# --- The checks ------------------------------------------------------------------------------


@dataclass
class Tally:
    """What each host was sent and answered, to hold its /metrics to."""

    creates: Counter[str] = field(default_factory=Counter)
    reads: Counter[str] = field(default_factory=Counter)
    ids: list[int] = field(default_factory=list)

    @property
    def created(self) -> int:
        return sum(self.creates.values())


def create(http: httpx.Client, host: Host, tally: Tally, number: int) -> tuple[dict[str, Any], str]:
    """A new session through `host`: its body and its Location, once it is a 201 whose Location
    names its id."""
    answer = http.post(CREATE, json={"group_id": 1 + number % 4, "study_activity_id": 1 + number % 3})
    expect(answer.status_code == 201, f"POST {CREATE} on host {host.name}: {answer.status_code} {answer.text}")
    body: dict[str, Any] = answer.json()
    tally.creates[host.name] += 1
    tally.ids.append(body["id"])
    location = answer.headers.get("location")
    expect(location == f"{CREATE}/{body['id']}", f"host {host.name} created {body['id']} at Location {location}")
    return body, str(location)


def cross_reads(network: Network, tally: Tally) -> float:
    """Sessions created through each host read back, by their Location, through the other, with
    the same body; the median seconds of a create and its read."""
    a, b = network.hosts
    durations: list[float] = []
    with client(a) as http_a, client(b) as http_b:
        http = {a: http_a, b: http_b}
        for number in range(CROSS_READS):
            for writer, reader in ((a, b), (b, a)):
                started = time.perf_counter()
                body, location = create(http[writer], writer, tally, number)
                read = http[reader].get(location)
                durations.append(time.perf_counter() - started)
                expect(
                    read.status_code == 200,
                    f"session {body['id']} created on host {writer.name}: {read.status_code} on host {reader.name}",
                )
                tally.reads[reader.name] += 1
                expect(
                    read.json() == body,
                    f"session {body['id']} reads differently on host {reader.name}: {read.json()} != {body}",
                )
    return statistics.median(durations)


@dataclass
class Outcome:
    host: str
    status: int  # 0: no answer
    session_id: int | None
    seconds: float
    error: str = ""


def concurrent_creates(network: Network, stop: threading.Event) -> tuple[list[Outcome], float]:
    """THREADS threads each making CREATES_PER_THREAD sessions, alternating hosts, all at once;
    every outcome, and the seconds they took together."""
    outcomes: list[list[Outcome]] = [[] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS + 1, timeout=10)

    def work(index: int) -> None:
        with client(network.hosts[0]) as http_a, client(network.hosts[1]) as http_b:
            barrier.wait()
            for number in range(CREATES_PER_THREAD):
                if stop.is_set():
                    return
                host, http = ((network.hosts[0], http_a), (network.hosts[1], http_b))[(index + number) % 2]
                started = time.perf_counter()
                try:
                    answer = http.post(CREATE, json={"group_id": 1 + number % 4, "study_activity_id": 1 + index % 3})
                    session_id = answer.json().get("id") if answer.status_code == 201 else None
                    outcome = Outcome(host.name, answer.status_code, session_id, 0.0, answer.text[:200])
                except (httpx.HTTPError, ValueError) as error:
                    outcome = Outcome(host.name, 0, None, 0.0, f"{type(error).__name__}: {error}")
                outcome.seconds = time.perf_counter() - started
                outcomes[index].append(outcome)

    # Daemon threads: an interrupted run does not wait for them (their requests fail once the
    # hosts stop), and `stop` ends them between requests.
    threads = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    try:
        for thread in threads:
            thread.join()
    finally:
        stop.set()
    return [o for part in outcomes for o in part], time.perf_counter() - started


def listed_total(host: Host) -> int:
    with client(host) as http:
        answer = http.get(CREATE, params={"per_page": 1})
    expect(answer.status_code == 200, f"GET {CREATE} on host {host.name}: {answer.status_code} {answer.text}")
    return int(answer.json()["total"])


SAMPLE = re.compile(r"^http_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.MULTILINE)


def requests_counted(host: Host) -> dict[tuple[str, str], int]:
    """The host's http_requests_total, by (operation, status)."""
    with client(host) as http:
        answer = http.get("/api/v1/metrics")
    expect(answer.status_code == 200, f"GET /api/v1/metrics on host {host.name}: {answer.status_code}")
    counted: dict[tuple[str, str], int] = {}
    for sample in SAMPLE.finditer(answer.text):
        labels = dict(re.findall(r'(\w+)="([^"]*)"', sample["labels"]))
        counted[(labels.get("operation", ""), labels.get("status", ""))] = round(float(sample["value"]))
    return counted


# --- The run ---------------------------------------------------------------------------------


@dataclass
class Run:
    pid: int = field(default_factory=os.getpid)
    folder: Path | None = None
    logs: list[Path] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def show_logs(self) -> None:
        for log in self.logs:
            text = tail(log)
            if text.strip():
                print(f"--- {log.name} (last lines) ---\n{text}", file=sys.stderr, flush=True)


def two_hosts(this: Run, pgbouncer: str, undo: Undo) -> None:
    clock = time.monotonic()
    folder = Path(tempfile.mkdtemp(prefix=f"study-sessions-two-hosts-{this.pid}-"))
    this.folder = folder
    undo.push(f"removed {folder}", lambda: shutil.rmtree(folder, ignore_errors=True), folder.exists)
    folder.chmod(0o755)  # PgBouncer, as postgres, reaches its own folder inside

    network = make_network(this.pid, undo)
    a, b = network.hosts
    say(
        f"network: bridge {network.bridge} {network.gateway}/{network.subnet.prefixlen}; "
        f"host A {a.namespace} {a.address}, host B {b.namespace} {b.address}"
    )

    database = f"two_hosts_{this.pid}"
    started = time.monotonic()
    make_database(database, undo)
    migrate(f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{database}")
    say(f"database {database} made, migrated and seeded in {time.monotonic() - started:.1f} s")

    this.logs.append(folder / "pgbouncer" / "pgbouncer.log")
    port = start_pgbouncer(pgbouncer, folder / "pgbouncer", network, database, undo)
    version = run(pgbouncer, "--version").splitlines()[0]
    say(f"{version} on {network.gateway}:{port}, transaction pooling, to {PG_HOST}:{PG_PORT}")

    url = f"postgresql+psycopg://{PG_USER}@{network.gateway}:{port}/{database}"
    services = {host: start_service(host, url, folder, undo) for host in network.hosts}
    this.logs += [s.log for s in services.values()]
    say(f"each host: gunicorn -c python:edge.serving app:app, {WORKERS} workers, on :{SERVICE_PORT}, {url}")
    ready = wait_until_ready(services)
    report(f"ready: both hosts answer /api/v1/readyz {ready:.1f} s after starting")

    tally = Tally()
    median = cross_reads(network, tally)
    report(
        f"cross-host reads: {2 * CROSS_READS} sessions created ({CROSS_READS} on each host), each read back "
        f"by its Location on the other host with the same body; median create+read {median * 1000:.0f} ms"
    )

    outcomes, seconds = concurrent_creates(network, this.stop)
    statuses = Counter(o.status for o in outcomes)
    bad = [o for o in outcomes if o.status != 201]
    if bad:
        raise Failed(f"concurrent creates, by status: {dict(statuses)}; one on host {bad[0].host}: {bad[0].error}")
    total = THREADS * CREATES_PER_THREAD
    expect(len(outcomes) == total, f"concurrent creates: {len(outcomes)} of {total} were made")
    for outcome in outcomes:
        tally.creates[outcome.host] += 1
        tally.ids.append(int(outcome.session_id or 0))
    expect(
        len(set(tally.ids)) == len(tally.ids),
        f"ids were given twice: {sorted(i for i, n in Counter(tally.ids).items() if n > 1)}",
    )
    latencies = statistics.quantiles([o.seconds for o in outcomes], n=20)
    report(
        f"concurrent creates: {statuses[201]} of {total} were 201 ({THREADS} threads x {CREATES_PER_THREAD}, "
        f"alternating hosts) in {seconds:.2f} s, {total / seconds:.0f}/s, "
        f"p50 {latencies[9] * 1000:.0f} ms, p95 {latencies[18] * 1000:.0f} ms; "
        f"{len(tally.ids)} distinct ids in all"
    )

    totals = {host.name: listed_total(host) for host in network.hosts}
    expect(
        totals["A"] == totals["B"] == tally.created,
        f"listed totals: host A {totals['A']}, host B {totals['B']}; 201s: {tally.created}",
    )
    report(f"totals: host A and host B each list {totals['A']} sessions, the number of 201s")

    for host in network.hosts:
        counted = requests_counted(host)
        sent = {
            "creates": (counted.get(("create_study_session", "201"), 0), tally.creates[host.name]),
            "reads": (counted.get(("get_study_session", "200"), 0), tally.reads[host.name]),
            "lists": (counted.get(("list_study_sessions", "200"), 0), 1),
        }
        wrong = {what: pair for what, pair in sent.items() if pair[0] != pair[1]}
        expect(not wrong, f"host {host.name}'s /metrics (counted, sent): {wrong}")
        report(
            f"metrics: host {host.name} counts its own {tally.creates[host.name]} creates, "
            f"{tally.reads[host.name]} reads and 1 list"
        )

    stopped = []
    for host, service in services.items():
        status, took = service.stop(STOP_WITHIN)
        expect(status == 0, f"host {host.name} exited {status} on SIGTERM:\n{tail(service.log)}")
        stopped.append(f"host {host.name} in {took:.1f} s")
    report(f"stopped: SIGTERM, both drained and exited 0 ({', '.join(stopped)})")
    report(f"two-hosts: OK in {time.monotonic() - clock:.1f} s")


def interrupt(signum: int, _frame: FrameType | None) -> None:
    if signum == signal.SIGALRM:
        raise Interrupted(f"the run took longer than its budget of {BUDGET} s")
    raise Interrupted(f"stopped by {signal.Signals(signum).name}")


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("two-hosts makes network namespaces, a bridge and PgBouncer's user switch: run it as root.")
    if not shutil.which("ip"):
        sys.exit("two-hosts needs iproute2's ip: apt-get install -y iproute2")
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        sys.exit("two-hosts runs PgBouncer as the user postgres (it refuses root), and there is none here.")
    pgbouncer = ensure_pgbouncer()

    this, undo, status = Run(), Undo(), 1
    # Ctrl-C stops the run even where it was started with SIGINT ignored (as a shell's background
    # job is): whoever sends it wants the run to end, cleaned up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGALRM):
        signal.signal(signum, interrupt)
    signal.alarm(BUDGET)
    try:
        two_hosts(this, pgbouncer, undo)
        status = 0
    except (Failed, psycopg.Error, httpx.HTTPError, OSError, subprocess.SubprocessError) as error:
        what = str(error) if isinstance(error, Failed) else f"{type(error).__name__}: {error}"
        print(f"two-hosts: FAILED: {what}", file=sys.stderr, flush=True)
        this.show_logs()
    except (KeyboardInterrupt, Interrupted) as error:
        print(f"two-hosts: FAILED: {str(error) or 'stopped by SIGINT'}; cleaning up", file=sys.stderr, flush=True)
        status = 130 if isinstance(error, KeyboardInterrupt) else 1
    finally:
        # Cleaning up is not to be cut short, and each of its steps is bounded.
        signal.alarm(0)
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        this.stop.set()
        cleaned = undo.run_all()
    if cleaned:
        say(f"cleaned up, each checked gone: {'; '.join(undo.done)}")
    else:
        print(f"two-hosts: FAILED to clean up: {', '.join(undo.failures)}", file=sys.stderr, flush=True)
    sys.exit(status if cleaned else status or 1)


if __name__ == "__main__":
    main()
