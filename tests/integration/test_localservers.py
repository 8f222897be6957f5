"""The local server launcher starts real servers that answer their protocols."""

from __future__ import annotations

import pytest

from mesh_core.localservers import LocalServers

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
