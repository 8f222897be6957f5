#!/usr/bin/env python
"""Tool calls through the mesh vs in-process, and tool_svc throughput with 1 and 2 replicas.

    python bench/tools.py [--calls 2000] [--seconds 5] [--concurrency 64]

Starts a Valkey and tool_svc processes (``python -m tool_svc``) on free loopback ports,
then prints:

* latency (p50/p99) of one ``search`` call: the plain function in-process, the LangChain
  tool in-process, a raw gRPC InvokeTool, and a ``RemoteTool`` (the mesh client);
* invocations/s with 1 and 2 replicas (``--concurrency`` calls in flight, round-robin),
  unkeyed and with a fresh idempotency key per call (one Redis round trip more).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lgmesh.tools.v1 import tools_pb2 as pb  # noqa: E402
from lgmesh.tools.v1 import tools_pb2_grpc as pb_grpc  # noqa: E402

from mesh_cli.launcher import ServiceProcess, start_all, stop_all  # noqa: E402
from mesh_client.tools import aremote_tools  # noqa: E402
from mesh_core.localservers import redis_server  # noqa: E402
from mesh_demo import tools as demo  # noqa: E402
from tool_svc._registry import to_base_tools  # noqa: E402

QUERY = {"query": "how do leases work", "top_k": 2}


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def show(label: str, samples: list[float], baseline: float | None = None) -> float:
    p50, p99 = pct(samples, 0.50), pct(samples, 0.99)
    ratio = f"  ({p50 / baseline:,.0f}x the plain function)" if baseline else ""
    print(f"  {label:<34} p50 {p50 * 1e6:9.1f} us   p99 {p99 * 1e6:9.1f} us{ratio}")
    return p50


async def timed(fn: Callable[[], Awaitable[object]], n: int) -> list[float]:
    for _ in range(min(200, n // 10)):  # warm up
        await fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await fn()
        out.append(time.perf_counter() - t0)
    return out


def start_tool_svcs(redis_url: str, prefix: str, n: int) -> list[ServiceProcess]:
    """``lgmesh tools`` replicas through the mesh's launcher, started together."""
    env = {"LGMESH_REDIS_URL": redis_url, "LGMESH_PREFIX": prefix}
    args = ["tools", "--port", "0", "--log-level", "WARNING"]
    procs = [ServiceProcess(f"tools-{i}", args, env, cwd=str(ROOT)) for i in range(n)]
    start_all(procs)
    return procs


async def throughput(
    target: str, seconds: float, concurrency: int, keyed: bool
) -> tuple[float, float]:
    options = [("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]}))]
    async with grpc.aio.insecure_channel(target, options=options) as ch:
        stub = pb_grpc.ToolServiceStub(ch)
        args = json.dumps(QUERY)
        done = 0
        latencies: list[float] = []
        end = time.perf_counter() + seconds
        counter = iter(range(10**9))

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < end:
                key = f"bench-{next(counter)}-{time.time_ns()}" if keyed else ""
                t0 = time.perf_counter()
                await stub.InvokeTool(
                    pb.InvokeToolRequest(name="search", arguments_json=args, idempotency_key=key)
                )
                latencies.append(time.perf_counter() - t0)
                done += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - t0), pct(latencies, 0.99)


async def main(ns: argparse.Namespace) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-tools-"))
    redis = redis_server(tmp)
    redis.start()
    prefix = f"bench{os.getpid()}"
    procs: list[ServiceProcess] = []
    try:
        procs = start_tool_svcs(redis.url, prefix, 2)
        addresses = [p.address for p in procs]

        print(f"tool call latency, {ns.calls} sequential calls of search({QUERY})")
        local_tool = next(t for t in to_base_tools(demo.TOOLS) if t.name == "search")

        async def plain() -> object:
            return demo.search(**QUERY)  # type: ignore[arg-type]

        async def local_lc() -> object:
            return await local_tool.ainvoke(QUERY)

        async with grpc.aio.insecure_channel(addresses[0]) as ch:
            stub = pb_grpc.ToolServiceStub(ch)
            req = pb.InvokeToolRequest(name="search", arguments_json=json.dumps(QUERY))

            async def raw() -> object:
                return await stub.InvokeTool(req)

            remote = (await aremote_tools(addresses[0], names=["search"]))[0]

            async def mesh() -> object:
                return await remote.ainvoke(QUERY)

            base = show("plain function, in-process", await timed(plain, ns.calls))
            show("LangChain tool, in-process", await timed(local_lc, ns.calls), base)
            show("gRPC InvokeTool, 1 replica", await timed(raw, ns.calls), base)
            show("RemoteTool (mesh client)", await timed(mesh, ns.calls), base)

        print(f"\nthroughput, {ns.concurrency} calls in flight for {ns.seconds}s each")
        for keyed in (False, True):
            for n in (1, 2):
                target = "ipv4:" + ",".join(addresses[:n])
                rate, p99 = await throughput(target, ns.seconds, ns.concurrency, keyed)
                kind = "idempotency key" if keyed else "no key"
                print(
                    f"  {n} replica(s), {kind:<16} {rate:8,.0f} invocations/s   p99 {p99 * 1e3:6.1f} ms"
                )
        print(f"\n(host has {os.cpu_count()} CPUs shared by the client, replicas and Valkey)")
    finally:
        stop_all(procs, grace=15)
        redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    asyncio.run(main(parser.parse_args()))
