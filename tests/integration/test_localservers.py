"""The local server launcher starts real servers that answer their protocols, refuse
unauthenticated clients, and give each tier of a mesh only what it needs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aetcd
import nats
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from mesh_core.adapters.etcd.session import new_etcd_client
from mesh_core.adapters.nats.subjects import NatsNames
from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.config import InfraSettings
from mesh_core.localservers import LocalServers
from mesh_core.security._infra import inbox_prefix
from tests.helpers import assert_eventually, process_alive

pytestmark = pytest.mark.integration


async def test_all_three_servers_answer_the_admin(infra: LocalServers) -> None:
    r = aioredis.from_url(infra.redis_url)
    assert await r.ping()
    await r.aclose()

    nc = await nats.connect(infra.nats_url)
    info = await nc.jetstream().account_info()
    assert info.limits is not None
    await nc.close()

    etcd = new_etcd_client(InfraSettings(etcd_url=infra.etcd_url))
    await etcd.connect()
    try:
        await etcd.put(b"probe", b"1")
        got = await etcd.get(b"probe")
        assert got is not None and got.value == b"1"
    finally:
        await etcd.close()


async def test_unauthenticated_clients_are_refused(infra: LocalServers) -> None:
    plain = aioredis.from_url(infra.redis.url)
    with pytest.raises(redis.exceptions.AuthenticationError):
        await plain.ping()
    await plain.aclose()
    wrong = aioredis.from_url(infra.redis.url.replace("://", "://root:nope@"))
    with pytest.raises(redis.exceptions.AuthenticationError):
        await wrong.ping()
    await wrong.aclose()

    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            infra.nats.url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2
        )

    host, port = infra.etcd.url.split("://")[1].split(":")
    async with aetcd.Client(host=host, port=int(port)) as anonymous:
        with pytest.raises(aetcd.exceptions.ClientError):
            await anonymous.get(b"/anything")


async def _redis_as(infra: LocalServers, tier: str, prefix: str) -> aioredis.Redis:
    return aioredis.from_url(infra.env(tier, prefix)["LGMESH_REDIS_URL"])


async def test_each_tier_reaches_only_its_redis_keys(infra: LocalServers, prefix: str) -> None:
    keys = RedisKeys(prefix)
    thread = "acme:t1"
    checkpoint = keys.checkpoint_keys(thread).latest
    record = keys.thread_record(thread)
    allowed = {
        "runtime": [checkpoint, record, keys.schedule("delayed"), keys.tool_idempotency("k")],
        "worker": [checkpoint, keys.thread_fence(thread)],
        "gateway": [
            record,
            keys.run_record(thread, "r1"),
            keys.run_index("r1"),
            keys.threads_index("acme"),
            keys.schedule("delayed"),
            keys.assistant("acme", "a1"),
        ],
        "tools": [keys.tool_idempotency("k"), keys.tool_idempotency_lock("k")],
        "llm": [keys.llm_cache("d"), keys.llm_idempotency("k"), keys.rate_bucket("t:rpm", 1)],
    }
    refused = {
        "runtime": ["another-mesh:x"],
        "worker": [record, keys.run_record(thread, "r1"), keys.schedule("delayed")],
        "gateway": [checkpoint, keys.tool_idempotency("k"), keys.llm_cache("d")],
        "tools": [checkpoint, record, keys.llm_cache("d")],
        "llm": [checkpoint, record, keys.tool_idempotency("k")],
    }
    for tier in allowed:
        r = await _redis_as(infra, tier, prefix)
        try:
            for key in allowed[tier]:
                await r.set(key, "1")
                assert await r.exists(key) == 1, (tier, key)
            for key in refused[tier]:
                with pytest.raises(redis.exceptions.NoPermissionError):
                    await r.get(key)
            with pytest.raises(redis.exceptions.NoPermissionError):
                await r.flushall()
            with pytest.raises(redis.exceptions.NoPermissionError):
                await r.keys("*")
        finally:
            await r.aclose()


async def _nats_as(infra: LocalServers, tier: str, prefix: str) -> nats.NATS:
    errors: list[Exception] = []

    async def on_error(exc: Exception) -> None:
        errors.append(exc)

    nc = await nats.connect(
        infra.env(tier, prefix)["LGMESH_NATS_URL"],
        inbox_prefix=inbox_prefix(tier).encode(),
        error_cb=on_error,
        allow_reconnect=False,
    )
    nc.test_errors = errors  # type: ignore[attr-defined]
    return nc


async def _violations(nc: nats.NATS, at_least: int = 0) -> list[str]:
    """The permission errors so far. The server answers a PUB or SUB it refuses with an
    -ERR before it answers the PING a flush sends next, and the client runs its error
    callback as it reads the -ERR: after a flush every refusal is in. Waits (bounded) for
    ``at_least`` of them all the same, then flushes once more for any that follow."""

    def found() -> list[str]:
        return [str(e) for e in nc.test_errors if "ermissions violation" in str(e)]  # type: ignore[attr-defined]

    await nc.flush()
    if at_least:
        await assert_eventually(lambda: len(found()) >= at_least, message="permission errors")
    await nc.flush()
    return found()


async def test_a_worker_cannot_read_event_logs_or_publish_outside_its_subjects(
    infra: LocalServers, prefix: str
) -> None:
    n = NatsNames(prefix)
    worker = await _nats_as(infra, "worker", prefix)
    try:
        await worker.subscribe(n.events_wildcard)
        await worker.subscribe(n.run_events("r1"))
        await worker.subscribe(inbox_prefix("gateway") + ".>")  # another tier's deliveries
        await worker.publish(n.run_events("r1"), b"forged event")
        await worker.publish(n.tasks_subject, b"forged task")
        await worker.publish(f"$JS.API.CONSUMER.CREATE.{n.events_stream}", b"{}")
        await worker.publish(f"$JS.API.STREAM.DELETE.{n.tasks_stream}", b"")
        found = await _violations(worker, at_least=7)
        assert len(found) == 7, found
        # What a worker does is allowed: replies to owners, hearing task cancels.
        worker.test_errors.clear()  # type: ignore[attr-defined]
        await worker.subscribe(n.task_cancel_wildcard)
        await worker.publish(n.task_reply("owner-1"), b"reply")
        assert await _violations(worker) == []
    finally:
        await worker.close()


async def test_a_gateway_reads_event_logs_but_writes_none(infra: LocalServers, prefix: str) -> None:
    n = NatsNames(prefix)
    gateway = await _nats_as(infra, "gateway", prefix)
    try:
        await gateway.publish(n.run_events("r1"), b"forged event")
        await gateway.publish(n.tasks_subject, b"forged task")
        await gateway.publish(f"$JS.API.STREAM.DELETE.{n.events_stream}", b"")
        await gateway.subscribe(n.tasks_subject)
        assert len(await _violations(gateway, at_least=4)) == 4
    finally:
        await gateway.close()


@pytest.mark.parametrize(
    ("tier", "can_read", "can_write"),
    [
        ("runtime", True, True),
        ("gateway", True, False),
        ("worker", False, False),
        ("tools", False, False),
        ("llm", False, False),
    ],
)
async def test_etcd_roles(
    infra: LocalServers, prefix: str, tier: str, can_read: bool, can_write: bool
) -> None:
    client = new_etcd_client(
        InfraSettings(etcd_url=infra.env(tier, prefix)["LGMESH_ETCD_URL"], prefix=prefix)
    )
    await client.connect()
    key = f"/{prefix}/threads/t".encode()
    try:
        if can_write:
            await client.put(key, b"1")
        else:
            with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
                await client.put(key, b"1")
        if can_read:
            await client.get(key)
        else:
            with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
                await client.get(key)
        with pytest.raises(aetcd.exceptions.ClientError, match="permission denied"):
            await client.get(b"/another-mesh/threads/t")
    finally:
        await client.close()


def test_stop_terminates_processes(tmp_path: Path) -> None:
    servers = LocalServers(tmp_path).start()
    procs = [s.proc for s in servers.servers]
    servers.stop()
    assert all(p is not None and p.poll() is not None for p in procs)


def test_users_survive_restarts(tmp_path: Path) -> None:
    servers = LocalServers(tmp_path, redis_aof=True).start()
    try:
        creds = servers.credentials("restarted")
        assert creds is not None
        for srv in servers.servers:
            srv.restart()

        async def check() -> None:
            env = servers.env("runtime", "restarted")
            r = aioredis.from_url(env["LGMESH_REDIS_URL"])
            assert await r.set("restarted:x", "1")
            await r.aclose()
            nc = await nats.connect(env["LGMESH_NATS_URL"], allow_reconnect=False)
            await nc.close()
            etcd = new_etcd_client(InfraSettings(etcd_url=env["LGMESH_ETCD_URL"]))
            await etcd.connect()
            await etcd.put(b"/restarted/x", b"1")
            await etcd.close()

        asyncio.run(check())
    finally:
        servers.stop()


_LAUNCHER = """
import sys, time
from mesh_core.localservers import LocalServers
servers = LocalServers().start()  # owns its temp dir
print(servers.base_dir, *(s.proc.pid for s in servers.servers), flush=True)
time.sleep(600)
"""


def test_servers_and_their_dir_go_when_the_launcher_is_sigkilled() -> None:
    """A launcher killed with SIGKILL runs no clean-up: its watchdog stops the servers
    (etcd, nats-server, valkey) within 5 s and removes their temp dir."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", _LAUNCHER],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    try:
        assert proc.stdout is not None
        base, *pids = proc.stdout.readline().split()
        assert len(pids) == 3 and Path(base).is_dir()
        assert all(process_alive(int(p)) for p in pids)
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        while time.monotonic() - killed < 5 and (
            any(process_alive(int(p)) for p in pids) or Path(base).exists()
        ):
            time.sleep(0.05)
        left = [p for p in pids if process_alive(int(p))]
        assert not left, f"servers still running 5 s after their launcher died: {left}"
        assert not Path(base).exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
        for p in locals().get("pids", []):
            if process_alive(int(p)):
                os.kill(int(p), signal.SIGKILL)


def test_lgmesh_servers_stops_its_servers_on_sigterm(tmp_path: Path) -> None:
    """``lgmesh servers`` prints where its servers listen; SIGTERM (or Ctrl-C, or closing
    the terminal) stops them at once and removes their temp dir."""
    import os
    import signal
    import subprocess
    import sys
    import time

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "mesh_cli", "servers"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=root,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    try:
        assert proc.stdout is not None
        exports = [proc.stdout.readline().strip() for _ in range(3)]
        assert [e.split("=")[0] for e in exports] == [
            "export LGMESH_ETCD_URL",
            "export LGMESH_NATS_URL",
            "export LGMESH_REDIS_URL",
        ]
        (base,) = tmp_path.iterdir()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - t0 < 3, "each server stopped on its SIGTERM, none killed"
        assert not base.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
