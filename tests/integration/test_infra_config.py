"""What `lgmesh infra-config` renders for deploy/ works in the real servers: Valkey loads
the ACL file (default user off, each tier confined to its keys), nats-server loads the
included authorization block (each tier's login and subject permissions), and
``--apply-etcd`` turns etcd auth on with a role per tier, idempotently."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesh_cli import infra_config
from mesh_core.localservers import (
    LocalServer,
    etcd_server,
    find_binary,
    find_free_port,
    nats_login_ok,
    port_open,
    redis_command,
)
from mesh_core.security._infra import InfraUser

PREFIX = "lgmesh"
PASSWORDS = {
    infra_config.password_env(t): f"pw-{t}-0123456789"
    for t in ("admin", "runtime", "worker", "gateway", "tools", "llm")
}


def _user(tier: str) -> InfraUser:
    name = "root" if tier == "admin" else f"{PREFIX}-{tier}"
    return InfraUser(name, PASSWORDS[infra_config.password_env(tier)])


@pytest.fixture(scope="module")
def rendered() -> dict[str, str]:
    files, _ = infra_config.render(PREFIX, infra_config.DEFAULT_URLS, PASSWORDS)
    return files


@contextlib.contextmanager
def _running(srv: LocalServer) -> Iterator[LocalServer]:
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def test_valkey_loads_the_acl_file(rendered: dict[str, str], tmp_path: Path) -> None:
    acl = tmp_path / "users.acl"
    acl.write_text(rendered["redis-users.acl"])
    port = find_free_port()
    argv = [str(find_binary("valkey-server", "redis-server")), "--bind", "127.0.0.1"]
    argv += ["--port", str(port), "--save", "", "--aclfile", str(acl)]

    def ready(s: LocalServer) -> bool:
        return port_open(s.port)

    srv = LocalServer("redis", argv, port, tmp_path / "data", ready, "", tmp_path / "redis.log")
    with _running(srv) as s:
        assert redis_command(s, None, "PING").startswith(b"-NOAUTH")
        with pytest.raises(PermissionError):
            redis_command(s, InfraUser(_user("gateway").username, "wrong"), "PING")
        thread = PREFIX + ":{t1}:thread"
        checkpoint = PREFIX + ":{t1}:cp:x"
        everything = [thread, checkpoint, PREFIX + ":tool:k", PREFIX + ":llm:k"]
        ok = {
            "gateway": [thread],
            "worker": [checkpoint],
            "runtime": everything,
            "tools": [PREFIX + ":tool:k"],
            "llm": [PREFIX + ":llm:k"],
        }
        for tier, keys in ok.items():
            for key in [*everything, "other:k"]:
                reply = redis_command(s, _user(tier), "SET", key, "v")
                assert reply.startswith(b"+OK") == (key in keys), (tier, key, reply)
        assert redis_command(s, _user("runtime"), "FLUSHALL").startswith(b"-NOPERM")
        assert redis_command(s, _user("admin"), "FLUSHALL").startswith(b"+OK")


def _nats_errors(srv: LocalServer, user: InfraUser, *lines: str) -> list[str]:
    """Send protocol ``lines`` as ``user``; the -ERR lines before the PONG."""
    with socket.create_connection((srv.host, srv.port), timeout=5) as sock:
        hello = {"user": user.username, "pass": user.password, "verbose": False}
        wire = "CONNECT " + json.dumps(hello) + "\r\n" + "".join(ln + "\r\n" for ln in lines)
        sock.sendall((wire + "PING\r\n").encode())
        buf = b""
        while b"PONG" not in buf:
            chunk = sock.recv(4096)
            if not chunk:
                break
            buf += chunk
    return [ln for ln in buf.decode().splitlines() if ln.startswith("-ERR")]


def test_nats_loads_the_included_authorization(rendered: dict[str, str], tmp_path: Path) -> None:
    port = find_free_port()
    (tmp_path / "auth").mkdir()
    (tmp_path / "auth" / "auth.conf").write_text(rendered["nats-auth.conf"])
    conf = tmp_path / "conf" / "nats.conf"
    conf.parent.mkdir()
    # The same relative include as deploy/k8s/infra/nats.yaml.
    conf.write_text(
        f'listen: "127.0.0.1:{port}"\njetstream {{ store_dir: "{tmp_path / "js"}" }}\n'
        "include ../auth/auth.conf\n"
    )

    def ready(s: LocalServer) -> bool:
        return "Server is ready" in s.log_path.read_text(errors="replace") and port_open(s.port)

    argv = [str(find_binary("nats-server")), "-c", str(conf)]
    srv = LocalServer("nats", argv, port, tmp_path / "data", ready, "", tmp_path / "nats.log")
    with _running(srv) as s:
        for tier in ("admin", "runtime", "worker", "gateway", "tools", "llm"):
            assert nats_login_ok(s, _user(tier)), tier
        assert not nats_login_ok(s, InfraUser(_user("worker").username, "wrong"))
        events = f"SUB {PREFIX}.events.run1 1"
        assert _nats_errors(s, _user("runtime"), events) == []
        assert "Permissions Violation" in " ".join(_nats_errors(s, _user("worker"), events))
        assert "Permissions Violation" in " ".join(
            _nats_errors(s, _user("gateway"), f"PUB {PREFIX}.tasks.x 0\r\n")
        )
        assert _nats_errors(s, _user("worker"), "SUB _INBOX_worker.x 1") == []
        assert "Permissions Violation" in " ".join(
            _nats_errors(s, _user("worker"), "SUB _INBOX_runtime.x 1")
        )


def _etcd(url: str, path: str, body: dict[str, str], token: str = "") -> dict[str, object]:
    headers = {"Content-Type": "application/json", **({"Authorization": token} if token else {})}
    req = urllib.request.Request(f"{url}/v3/{path}", json.dumps(body).encode(), headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            out: dict[str, object] = json.loads(resp.read() or b"{}")
            return out
    except urllib.error.HTTPError as exc:
        return {"error": exc.read().decode(errors="replace")}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_apply_etcd_enables_auth_with_a_role_per_tier(
    rendered: dict[str, str], tmp_path: Path
) -> None:
    plan = json.loads(rendered["etcd-users.json"])
    with _running(etcd_server(tmp_path)) as s:
        said: list[str] = []
        infra_config.apply_etcd(s.url, plan, said.append)
        assert said[-1] == "etcd: auth enabled"
        infra_config.apply_etcd(s.url, plan, said.append)  # again: idempotent, auth stays on
        key = {"key": _b64(f"/{PREFIX}/registry/x"), "value": _b64("v")}

        def token(tier: str) -> str:
            u = _user(tier)
            out = _etcd(s.url, "auth/authenticate", {"name": u.username, "password": u.password})
            return str(out["token"])

        assert "error" in _etcd(s.url, "kv/put", key)  # no user: refused
        assert "error" not in _etcd(s.url, "kv/put", key, token("runtime"))
        assert "error" in _etcd(s.url, "kv/put", key, token("gateway"))  # read-only
        assert _etcd(s.url, "kv/range", {"key": key["key"]}, token("gateway"))["kvs"]
        assert "error" in _etcd(s.url, "kv/range", {"key": key["key"]}, token("worker"))
        other = {"key": _b64("/other/x"), "value": _b64("v")}
        assert "error" in _etcd(s.url, "kv/put", other, token("runtime"))  # outside the prefix
