"""etcd, Valkey or NATS goes away for a few seconds mid-run, then comes back on the same
port and data dir: runs pause and continue (0 failed, final states equal in-process
LangGraph), services say NOT_SERVING meanwhile and SERVING again soon after."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster
from tests.faults.support import GRAPHS, Workload, statuses, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.chaos]

TTL = 3
OUTAGE = {"etcd": 2 * TTL, "redis": 5.0, "nats": 5.0}


@pytest.mark.parametrize("backend", ["etcd", "redis", "nats"])
async def test_backend_outage_mid_run_pauses_and_continues(
    backend: str, durable_infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    cluster = MeshCluster(durable_infra, prefix, tmp_path, graphs=GRAPHS, lease_ttl=TTL)
    try:
        cluster.start(runtimes=2, gateways=1)
        client = cluster.client()
        count_key = f"{prefix}:starts"
        work = Workload(client, count_key)
        for _ in range(4):
            await work.start("chain", {"step": 0}, steps=12, delay=0.5)
        for _ in range(2):
            await work.start("fan", {"n": 6}, delay=2.0)
        redis = aioredis.from_url(durable_infra.redis_url)
        try:
            # every run has started a node before the outage
            await wait_until(lambda: _started(redis, count_key, 4 + 6), timeout=20)
        finally:
            await redis.aclose()

        server = {
            "etcd": durable_infra.etcd,
            "redis": durable_infra.redis,
            "nats": durable_infra.nats,
        }[backend]
        await asyncio.to_thread(server.stop)
        stopped_at = time.monotonic()

        async def all_not_serving() -> bool:
            return set((await statuses(cluster)).values()) == {"NOT_SERVING"}

        await wait_until(all_not_serving, timeout=OUTAGE[backend] - 0.5)
        await asyncio.sleep(max(0.0, OUTAGE[backend] - (time.monotonic() - stopped_at)))
        await asyncio.to_thread(server.start)
        back_at = time.monotonic()

        async def all_serving() -> bool:
            return set((await statuses(cluster)).values()) == {"SERVING"}

        await wait_until(all_serving, timeout=TTL + 2)
        assert time.monotonic() - back_at <= TTL + 2

        await work.check(timeout=90)
        # and a new run works
        after = Workload(client, f"{prefix}:after")
        await after.start("chain", {"step": 0}, steps=3)
        await after.check(timeout=30)
    finally:
        await cluster.aclose_clients()
        cluster.stop()


async def _started(redis: aioredis.Redis, key: str, at_least: int) -> bool:
    return len(await redis.hkeys(key)) >= at_least
