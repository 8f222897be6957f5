"""A runtime in its own network namespace is cut from etcd only, or from Redis only, mid-run:
the run finishes on another runtime with the in-process state, runs sent meanwhile succeed
elsewhere, and the cut runtime serves again after the heal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mesh_core.localservers import BinaryNotFoundError, LocalServers
from tests.e2e.cluster import MeshCluster
from tests.faults.netns import Topology, missing_prerequisite, topology
from tests.faults.support import GRAPHS, Workload, health, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.chaos]

TTL = 3

_why = missing_prerequisite()


@pytest.fixture
def net(tmp_path: Path) -> Iterator[tuple[Topology, LocalServers]]:
    if _why:
        pytest.skip(_why)
    with topology() as topo:
        try:
            servers = LocalServers(tmp_path / "infra", hosts=dict(topo.backends)).start()
        except BinaryNotFoundError as exc:
            pytest.skip(f"missing server binary: {exc}")
        try:
            yield topo, servers
        finally:
            servers.stop()


@pytest.mark.parametrize("backend", ["etcd", "redis"])
async def test_runtime_cut_from_one_backend_mid_run(
    backend: str, net: tuple[Topology, LocalServers], prefix: str, tmp_path: Path
) -> None:
    topo, servers = net
    ns, address = topo.add_host("cut")
    cluster = MeshCluster(servers, prefix, tmp_path, graphs=GRAPHS, lease_ttl=TTL)
    redis = aioredis.from_url(servers.redis_url)
    try:
        # The run starts on the runtime that is about to be cut (the only one at first).
        cut = cluster.add_runtime(
            extra=["--host", address, "--handover-after", "2"], wrapper=topo.wrapper(ns)
        )
        cluster.add_gateway()
        client = cluster.client()
        work = Workload(client, f"{prefix}:starts")
        await work.start("chain", {"step": 0}, steps=10, delay=0.4)

        async def a_few_steps_in() -> bool:
            return await redis.hlen(work.count_key) >= 3

        await wait_until(a_few_steps_in, timeout=30)
        healthy = cluster.add_runtime()

        topo.cut(ns, backend)
        cut_at = time.monotonic()
        # runs sent meanwhile succeed (on the healthy runtime)
        meanwhile = Workload(client, f"{prefix}:meanwhile")
        for _ in range(3):
            await meanwhile.start("chain", {"step": 0}, steps=2)
        await meanwhile.check(timeout=60)
        # the cut run finishes elsewhere, with the in-process state
        await work.check(timeout=90)
        took = time.monotonic() - cut_at
        print(f"cut from {backend}: run finished {took:.1f}s after the cut")

        async def not_serving() -> bool:
            return await health(cut.address, security=cluster.security("gateway")) == "NOT_SERVING"

        # the cut runtime says so (its lease is gone, since the run finished elsewhere: its
        # next health probe, 0.5 s apart, reports it; a loaded machine may take a moment)
        await wait_until(not_serving, timeout=5)
        assert await health(healthy.address, security=cluster.security("gateway")) == "SERVING"

        topo.heal(ns, backend)
        healed_at = time.monotonic()

        async def serving_again() -> bool:
            return await health(cut.address, security=cluster.security("gateway")) == "SERVING"

        await wait_until(serving_again, timeout=30)
        print(
            f"cut from {backend}: SERVING again {time.monotonic() - healed_at:.1f}s after the heal"
        )
        # and it takes runs again: its own thread placement may pick it
        again = Workload(client, f"{prefix}:again")
        for _ in range(4):
            await again.start("chain", {"step": 0}, steps=2)
        await again.check(timeout=60)
    finally:
        await redis.aclose()
        await cluster.aclose_clients()
        cluster.stop()
