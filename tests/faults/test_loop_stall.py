"""Heavy but allowed work stalls a runtime's event loop (three ~4 MiB inputs at once,
1,000 concurrent streams): its etcd session survives (keepalives run on their own
thread), or, if lost, heals, and no run fails either way."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import httpx
import pytest

from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster
from tests.faults.support import GRAPHS

pytestmark = [pytest.mark.faults]

TTL = 2  # tight on purpose: a loop stalled for > 1.5 s used to cost the session


async def _generation(cluster: MeshCluster) -> int:
    port = cluster.metrics_ports["runtime-1"]
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    m = re.search(r"^lgmesh_runtime_etcd_session_generation\{[^}]*\} (\S+)$", text, re.M)
    assert m, "the runtime exports its session generation"
    return int(float(m.group(1)))


async def test_three_large_inputs_at_once(infra: LocalServers, prefix: str, tmp_path: Path) -> None:
    cluster = MeshCluster(infra, prefix, tmp_path, graphs=GRAPHS, lease_ttl=TTL, metrics=True)
    try:
        cluster.start(runtimes=1, gateways=1)
        client = cluster.client()
        t = await client.threads.create()
        blob = "y" * (3_900_000)
        results = await asyncio.wait_for(
            asyncio.gather(
                *(
                    client.runs.wait_full(
                        t["thread_id"], "blob", input={"blob": blob}, multitask_strategy="enqueue"
                    )
                    for _ in range(3)
                )
            ),
            120,
        )
        assert [r["run"]["status"] for r in results] == ["success"] * 3
        assert all(r["values"]["size"] == len(blob) for r in results)
        generation = await _generation(cluster)
        print(f"session generation after three 3.9 MB runs: {generation}")
        assert generation >= 1  # kept (1) or healed; either way no run failed
    finally:
        await cluster.aclose_clients()
        cluster.stop()


async def test_a_thousand_concurrent_streams(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    cluster = MeshCluster(infra, prefix, tmp_path, graphs=GRAPHS, lease_ttl=TTL, metrics=True)
    try:
        cluster.add_runtime(extra=["--capacity", "2000"])
        cluster.add_gateway()
        client = cluster.client("bulk-key")  # a tenant allowed 1,000 streams
        threads = await asyncio.gather(*(client.threads.create() for _ in range(1000)))

        async def one(thread_id: str) -> str:
            status = ""
            async for part in client.runs.stream(
                thread_id, "chain", input={"step": 0}, config={"configurable": {"steps": 2}}
            ):
                if part.event == "lifecycle" and part.lifecycle["kind"] == "ended":
                    status = part.lifecycle["status"]
            return status

        statuses = await asyncio.wait_for(
            asyncio.gather(*(one(t["thread_id"]) for t in threads)), 240
        )
        assert statuses.count("success") == 1000, {s: statuses.count(s) for s in set(statuses)}
        generation = await _generation(cluster)
        print(f"session generation after 1,000 concurrent streams: {generation}")
    finally:
        await cluster.aclose_clients()
        cluster.stop()
