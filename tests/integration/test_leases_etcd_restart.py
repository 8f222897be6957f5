"""Sessions, leases and watches survive an etcd restart shorter than the TTL; a longer outage
makes the holder fence itself."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from mesh_core.adapters.etcd import EtcdSession, RuntimeInfo, RuntimeRegistry, ThreadLeases
from mesh_core.config import InfraSettings
from mesh_core.errors import StaleOwnerError, UnavailableError
from mesh_core.localservers import LocalServers
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _settings(servers: LocalServers, prefix: str) -> InfraSettings:
    return InfraSettings(etcd_url=servers.etcd_url, prefix=prefix)


async def test_restart_shorter_than_the_ttl_is_survived(
    fresh_infra: LocalServers, prefix: str
) -> None:
    settings = _settings(fresh_infra, prefix)
    async with (
        EtcdSession(settings, ttl=6, margin=0.5) as sa,
        EtcdSession(settings, ttl=6, margin=0.5) as sb,
    ):
        lost: list[str] = []
        sa.on_lost(lambda: lost.append("a"))
        sb.on_lost(lambda: lost.append("b"))
        a = ThreadLeases(sa, None, "rt-a", "a")
        b = ThreadLeases(sb, None, "rt-b", "b")
        registry = RuntimeRegistry(sa)
        await registry.register(RuntimeInfo("rt-a", "127.0.0.1:1", capacity=1))
        held = await a.try_acquire("t")
        assert held is not None
        waiter = asyncio.create_task(b.acquire("t", timeout=30))
        assert not await b.wait_released("t", timeout=0.2)

        await asyncio.to_thread(fresh_infra.etcd.restart)
        restarted_at = time.monotonic()

        # Keepalives reach the restarted etcd again: the deadline moves past the restart.
        await assert_eventually(lambda: sa.deadline > restarted_at, timeout=5)
        await assert_eventually(lambda: sb.deadline > restarted_at, timeout=5)
        assert lost == []
        held.check()
        assert not waiter.done()

        # The restarted etcd forgot the client's auth token: the first call is refused as
        # UNAVAILABLE (callers retry) and the client authenticates again at once.
        async def listed() -> bool:
            with contextlib.suppress(UnavailableError):
                return [r.runtime_id for r in await registry.list()] == ["rt-a"]
            return False

        await assert_eventually(listed, timeout=5)

        # The waiter's watch was re-established: a release still wakes it.
        assert await a.release(held)
        won = await asyncio.wait_for(waiter, timeout=5)
        assert won.token > held.token


async def test_outage_longer_than_the_ttl_fences_the_holder(
    fresh_infra: LocalServers, prefix: str
) -> None:
    settings = _settings(fresh_infra, prefix)
    session = EtcdSession(settings, ttl=2, margin=0.5)
    await session.start()
    try:
        lost = asyncio.Event()
        session.on_lost(lost.set)
        lease = await ThreadLeases(session, None, "rt-a", "a").try_acquire("t")
        assert lease is not None

        await asyncio.to_thread(fresh_infra.etcd.stop)
        stopped_at = time.monotonic()
        await asyncio.wait_for(lost.wait(), timeout=5)
        assert time.monotonic() - stopped_at < 2 - 0.5 + 0.3
        with pytest.raises(StaleOwnerError):
            lease.check()
    finally:
        await asyncio.to_thread(fresh_infra.etcd.start)
        await session.close()
