#!/usr/bin/env python
"""Per-run latency of a 10-node trivial graph, three ways, in one process run:

  (a) in-process LangGraph with InMemorySaver
  (b) in-process LangGraph with the mesh checkpointer on Redis (real valkey)
  (c) through the mesh: client -> gateway -> runtime (real processes, etcd, NATS, Redis)

All use durability="sync" (what the mesh uses). Prints p50/p99 and runs/s, and the
ratios c/a and c/b. Target: c/a <= 2.0 at p50.

    python bench/run_latency.py [--runs 300]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from bench.graphs_bench import build_chain  # noqa: E402
from mesh_cli.launcher import ServiceProcess  # noqa: E402
from mesh_client import MeshClient  # noqa: E402
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer  # noqa: E402
from mesh_core.adapters.redis.client import connect_redis  # noqa: E402
from mesh_core.localservers import LocalServers  # noqa: E402


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def report(name: str, lat: list[float], wall: float) -> dict[str, float]:
    p50, p99 = pct(lat, 50) * 1e3, pct(lat, 99) * 1e3
    rps = len(lat) / wall
    print(f"  {name:<44} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   {rps:8.1f} runs/s")
    return {"p50": p50, "p99": p99, "rps": rps}


async def inprocess(saver: object, runs: int) -> tuple[list[float], float]:
    graph = build_chain(10).compile(checkpointer=saver)  # type: ignore[arg-type]
    for _ in range(20):  # warm up
        await graph.ainvoke(
            {"n": 0}, {"configurable": {"thread_id": str(uuid.uuid4())}}, durability="sync"
        )
    lat = []
    t0 = time.perf_counter()
    for _ in range(runs):
        s = time.perf_counter()
        out = await graph.ainvoke(
            {"n": 0}, {"configurable": {"thread_id": str(uuid.uuid4())}}, durability="sync"
        )
        lat.append(time.perf_counter() - s)
        assert out["n"] == 10
    return lat, time.perf_counter() - t0


async def through_mesh(address: str, runs: int) -> tuple[list[float], float]:
    client = MeshClient(address, "bench-key")
    for _ in range(20):
        await client.runs.wait(None, "chain10", input={"n": 0})
    lat = []
    t0 = time.perf_counter()
    for _ in range(runs):
        s = time.perf_counter()
        out = await client.runs.wait(None, "chain10", input={"n": 0})
        lat.append(time.perf_counter() - s)
        assert out["n"] == 10, out
    wall = time.perf_counter() - t0
    await client.close()
    return lat, wall


async def main_async(runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalServers(Path(tmp)) as servers:
        print(f"10-node trivial graph, {runs} sequential runs each, durability=sync")
        a = report("(a) in-process, InMemorySaver", *(await inprocess(InMemorySaver(), runs)))
        redis = connect_redis(servers.redis_url)
        saver = MeshCheckpointer(redis, prefix="bench")
        b = report("(b) in-process, mesh checkpointer on Redis", *(await inprocess(saver, runs)))
        await redis.aclose()
        env = {
            **servers.env(),
            "LGMESH_PREFIX": "bench",
            "LGMESH_API_KEYS": "bench=bench-key",
            "LGMESH_LOG_LEVEL": "WARNING",
        }
        graphs = str(ROOT / "bench" / "graphs.yaml")
        rt = ServiceProcess(
            "runtime", ["runtime", "--port", "0", "--graphs", graphs], env, cwd=str(ROOT)
        ).start()
        gw = ServiceProcess("gateway", ["gateway", "--port", "0"], env, cwd=str(ROOT)).start()
        try:
            c = report("(c) through gateway + runtime", *(await through_mesh(gw.address, runs)))
        finally:
            gw.stop()
            rt.stop()
        print(f"  ratio c/a p50: {c['p50'] / a['p50']:.2f}   (target <= 2.0)")
        print(f"  ratio c/b p50: {c['p50'] / b['p50']:.2f}")
        print(f"  ratio c/a runs/s: {a['rps'] / c['rps']:.2f}x slower")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=300)
    ns = p.parse_args()
    asyncio.run(main_async(ns.runs))


if __name__ == "__main__":
    main()
