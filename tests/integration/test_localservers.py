"""The local server launcher starts real servers that answer their protocols."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesh_core.localservers import LocalServers
from tests.helpers import process_alive

pytestmark = pytest.mark.integration


async def test_all_three_servers_answer(infra: LocalServers) -> None:
    import aetcd
    import nats
    import redis.asyncio as aioredis

    r = aioredis.from_url(infra.redis_url)
    assert await r.ping()
    await r.aclose()

    nc = await nats.connect(infra.nats_url)
    js = nc.jetstream()
    info = await js.account_info()
    assert info.limits is not None
    await nc.close()

    host, port = infra.etcd_url.split("://")[1].split(":")
    async with aetcd.Client(host=host, port=int(port)) as etcd:
        await etcd.put(b"probe", b"1")
        got = await etcd.get(b"probe")
        assert got is not None and got.value == b"1"


def test_stop_terminates_processes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    servers = LocalServers(tmp_path).start()
    procs = [s.proc for s in servers.servers]
    servers.stop()
    assert all(p is not None and p.poll() is not None for p in procs)


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
