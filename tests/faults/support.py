"""Helpers for fault tests: health probes, runs to compare with in-process LangGraph."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mesh_client import MeshClient
from mesh_core.adapters.redis.schedule import WEBHOOKS, Schedule
from mesh_core.security import PLAINTEXT, InternalSecurity
from tests.e2e.cluster import MeshCluster
from tests.faults import graphs
from tests.helpers import assert_eventually

GRAPHS = str(Path(__file__).with_name("graphs.yaml"))
_GRAPH_OBJECTS = {"chain": graphs.chain, "fan": graphs.fan}


async def health(
    address: str, timeout: float = 1.0, *, security: InternalSecurity = PLAINTEXT
) -> str:
    """SERVING, NOT_SERVING, or DOWN (...) when it does not answer. ``security``: to
    reach a runtime of a cluster with TLS (``cluster.security("gateway")``)."""
    try:
        async with security.channel(address, "runtime") as ch:
            resp = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
    except grpc.aio.AioRpcError as err:
        return f"DOWN ({err.code().name})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status))


async def statuses(cluster: MeshCluster) -> dict[str, str]:
    procs = [*cluster.runtimes, *cluster.gateways]
    internal = cluster.security("gateway")
    got = await asyncio.gather(
        *(
            health(p.address, security=internal if p in cluster.runtimes else PLAINTEXT)
            for p in procs
            if p.alive and p.address
        )
    )
    return {
        p.name: s for p, s in zip([p for p in procs if p.alive and p.address], got, strict=True)
    }


class Workload:
    """Runs started through the mesh, each with its expected in-process result."""

    def __init__(self, client: MeshClient, count_key: str) -> None:
        self.client = client
        self.count_key = count_key
        self.tasks: list[asyncio.Task[dict[str, Any]]] = []
        self.expected: list[Any] = []
        self.labels: list[str] = []

    async def start(self, graph: str, payload: dict[str, Any], **conf: Any) -> None:
        config = {"configurable": {"count_key": self.count_key, **conf}}
        thread = await self.client.threads.create()
        self.expected.append(await graphs.expected_state(_GRAPH_OBJECTS[graph], payload, config))
        self.labels.append(f"{graph}@{thread['thread_id']}")
        self.tasks.append(
            asyncio.create_task(
                self.client.runs.wait_full(thread["thread_id"], graph, input=payload, config=config)
            )
        )

    async def results(self, timeout: float) -> list[dict[str, Any]]:
        done = await asyncio.wait_for(asyncio.gather(*self.tasks), timeout)
        return list(done)

    async def check(self, timeout: float) -> None:
        """Every run succeeded with the in-process final state."""
        results = await self.results(timeout)
        wrong = [
            (label, r["run"]["status"], r["values"], want)
            for label, r, want in zip(self.labels, results, self.expected, strict=True)
            if r["run"]["status"] != "success" or r["values"] != want
        ]
        assert wrong == [], wrong


async def wait_until(predicate: Any, *, timeout: float, interval: float = 0.1) -> float:
    """Poll an async predicate until true; the seconds it took."""
    start = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)


async def webhook_due(redis_url: str, prefix: str, run_id: str) -> float | None:
    """When the run's webhook job is due next; None once it left the schedule."""
    redis = aioredis.from_url(redis_url)
    try:
        return await Schedule(redis, prefix, WEBHOOKS).due_at(run_id)
    finally:
        await redis.aclose()


async def webhook_finished(redis_url: str, prefix: str, run_id: str, timeout: float) -> None:
    """Wait until the run's webhook job has left the schedule (a runtime delivered it, or
    gave it up, and called ``done``): no runtime holds it or takes it again, so no more
    POSTs of it come."""

    async def gone() -> bool:
        return await webhook_due(redis_url, prefix, run_id) is None

    await assert_eventually(
        gone, timeout=timeout, interval=0.1, message=f"webhook of {run_id} finished"
    )


class Receiver:
    """A loopback HTTP server recording each POST; the first ``hang`` POSTs get no answer."""

    def __init__(self, hang: int = 0) -> None:
        self.hang = hang
        self.posts: list[dict[str, Any]] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            self.posts.append({"headers": headers, "body": json.loads(body), "at": time.time()})
            if len(self.posts) <= self.hang:
                await asyncio.sleep(60)  # never answers: the sender times out or dies
                return
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
