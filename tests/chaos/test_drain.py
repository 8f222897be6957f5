"""SIGTERM to a runtime mid-run: NOT_SERVING, no new runs, the run completes elsewhere, nothing lost."""

from __future__ import annotations

import functools
import signal
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh_client import StreamPart
from mesh_core.localservers import LocalServers
from mesh_core.security import InternalSecurity
from tests.e2e.cluster import MeshCluster
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


async def _health(address: str, security: InternalSecurity) -> int:
    async with security.channel(address, "runtime") as ch:
        try:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.aio.AioRpcError:
            return -1  # gone
        return int(resp.status)


async def test_sigterm_drains_and_hands_over(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    cluster = MeshCluster(infra, prefix, tmp_path, lease_ttl=3)
    try:
        cluster.add_runtime(extra=["--drain-timeout", "1"])
        cluster.add_runtime(extra=["--drain-timeout", "1"])
        cluster.add_gateway()
        client = cluster.client()
        count_key = f"{prefix}:drain"
        t = await client.threads.create()
        config = {"configurable": {"delay": 0.5, "steps": 8, "count_key": count_key}}
        parts: list[StreamPart] = []
        draining = None
        committed: list[int] = []
        async for p in client.runs.stream(
            t["thread_id"],
            "steps",
            input={"step": 0},
            config=config,
            stream_mode=["updates", "values"],
        ):
            parts.append(p)
            if p.event == "updates" and "work" in p.data and draining is None:
                committed.append(p.data["work"]["step"])
                if p.data["work"]["step"] == 2:
                    rid = parts[0].lifecycle["runtime_id"]
                    draining = cluster.runtimes[int(rid.rsplit("-rt", 1)[1]) - 1]
                    draining.signal(signal.SIGTERM)
                    # readiness fails at once while the run is still being drained
                    address = draining.address
                    await assert_eventually(
                        functools.partial(
                            _health_not_serving, address, cluster.security("gateway")
                        ),
                        timeout=3,
                        message="draining runtime reports NOT_SERVING",
                    )
        end = parts[-1]
        assert end.lifecycle["status"] == "success", cluster.logs()
        assert [e.split("@")[0] for e in end.data["log"]] == [f"s{i}" for i in range(1, 9)]
        assert [p.seq for p in parts] == list(range(1, len(parts) + 1))
        resumed = [
            p.lifecycle
            for p in parts
            if p.event == "lifecycle" and p.lifecycle["kind"] == "resumed"
        ]
        assert resumed and resumed[0]["runtime_id"] != parts[0].lifecycle["runtime_id"]
        r = aioredis.from_url(infra.redis_url)
        counts = {k.decode(): int(v) for k, v in (await r.hgetall(count_key)).items()}
        await r.aclose()
        for step in committed:
            assert counts[f"work{step}"] == 1, counts
        assert draining is not None
        await assert_eventually(
            lambda: not draining.alive, timeout=15, message="drained runtime exits"
        )
        # new runs go to the peer
        out = await client.runs.wait(
            None, "steps", input={"step": 0}, config={"configurable": {"steps": 1}}
        )
        assert out["step"] == 1
    finally:
        await cluster.aclose_clients()
        cluster.stop()


async def _health_not_serving(address: str, security: InternalSecurity) -> bool:
    return await _health(address, security) in (health_pb2.HealthCheckResponse.NOT_SERVING, -1)
