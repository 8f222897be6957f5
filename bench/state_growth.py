#!/usr/bin/env python
"""A long chat thread: 200 runs, each adding one 2 KB message, through the mesh.

Prints, for the mesh's default checkpoint retention and for full history
(``--checkpoint-keep all``): the bytes the thread's checkpoints take in Valkey after
run N, the bytes the run event log grew by, and the latency of the last runs against
the first (median of runs 1-10 vs N-9..N). The same ratio for in-process LangGraph
with InMemorySaver is the baseline. Target: run N / run 1 <= 1.3 through the mesh.

    python bench/state_growth.py [--runs 200] [--message-bytes 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nats  # noqa: E402
from langchain_core.messages import HumanMessage  # noqa: E402
from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from bench.graphs_bench import build_chat  # noqa: E402
from mesh_cli.launcher import ServiceProcess  # noqa: E402
from mesh_client import MeshClient  # noqa: E402
from mesh_core.adapters.nats.subjects import NatsNames  # noqa: E402
from mesh_core.adapters.redis.client import connect_redis  # noqa: E402
from mesh_core.adapters.redis.keys import RedisKeys  # noqa: E402
from mesh_core.localservers import LocalServers  # noqa: E402

WINDOW = 10


def growth(lat: list[float]) -> tuple[float, float, float]:
    first = statistics.median(lat[:WINDOW])
    last = statistics.median(lat[-WINDOW:])
    return first * 1e3, last * 1e3, last / first


async def inprocess(runs: int, size: int) -> list[float]:
    graph = build_chat().compile(checkpointer=InMemorySaver())
    cfg = {"configurable": {"thread_id": str(uuid.uuid4())}}
    lat = []
    for i in range(runs):
        msg = HumanMessage(content=f"{i:05d}" + "x" * (size - 5))
        s = time.perf_counter()
        await graph.ainvoke({"messages": [msg]}, cfg, durability="sync")
        lat.append(time.perf_counter() - s)
    return lat


async def stored_bytes(redis_url: str, prefix: str, scoped_thread: str) -> tuple[int, int]:
    """(bytes, checkpoints) of the thread's checkpoint keys (MEMORY USAGE)."""
    redis = connect_redis(redis_url)
    try:
        keys = RedisKeys(prefix).checkpoint_keys(scoped_thread)
        total = 0
        for key in keys.all():
            total += int(await redis.memory_usage(key, samples=0) or 0)
        return total, int(await redis.zcard(keys.index))
    finally:
        await redis.aclose()


async def events_bytes(nats_url: str, prefix: str) -> int:
    nc = await nats.connect(nats_url)
    try:
        info = await nc.jetstream().stream_info(NatsNames(prefix).events_stream)
        return int(info.state.bytes)
    finally:
        await nc.close()


async def through_mesh(
    servers: LocalServers, keep: str, runs: int, size: int
) -> tuple[list[float], int, int, int]:
    prefix = f"growth{uuid.uuid4().hex[:6]}"
    env = {
        **servers.env(),
        "LGMESH_PREFIX": prefix,
        "LGMESH_API_KEYS": "bench=bench-key",
        "LGMESH_TENANT_LIMITS": str(ROOT / "bench" / "limits.yaml"),
        "LGMESH_LOG_LEVEL": "WARNING",
    }
    graphs = str(ROOT / "bench" / "graphs.yaml")
    rt = ServiceProcess(
        "runtime",
        ["runtime", "--port", "0", "--graphs", graphs, "--checkpoint-keep", keep],
        env,
        cwd=str(ROOT),
    ).start()
    gw = ServiceProcess("gateway", ["gateway", "--port", "0"], env, cwd=str(ROOT)).start()
    client = MeshClient(gw.address, "bench-key")
    try:
        thread = (await client.threads.create())["thread_id"]
        events_before = await events_bytes(servers.nats_url, prefix)
        lat = []
        for i in range(runs):
            msg = {"type": "human", "content": f"{i:05d}" + "x" * (size - 5)}
            s = time.perf_counter()
            out = await client.runs.wait(thread, "chat", input={"messages": [msg]})
            lat.append(time.perf_counter() - s)
            assert out["turns"] == i + 1, out
        stored, checkpoints = await stored_bytes(servers.redis_url, prefix, f"bench:{thread}")
        events = await events_bytes(servers.nats_url, prefix) - events_before
        return lat, stored, checkpoints, events
    finally:
        await client.close()
        gw.stop()
        rt.stop()


async def main_async(runs: int, size: int) -> None:
    print(f"a chat thread, {runs} runs, each adding one {size}-byte message")
    a0, a1, ar = growth(await inprocess(runs, size))
    print(f"  in-process, InMemorySaver: run 1 {a0:6.2f} ms, run {runs} {a1:6.2f} ms  x{ar:.2f}")
    with tempfile.TemporaryDirectory() as tmp, LocalServers(Path(tmp)) as servers:
        for keep, label in (
            ("100", "default retention (last 100 checkpoints)"),
            ("all", "full history"),
        ):
            lat, stored, checkpoints, events = await through_mesh(servers, keep, runs, size)
            m0, m1, mr = growth(lat)
            print(f"  mesh, {label}:")
            print(
                f"    stored {stored / 1e6:7.2f} MB in {checkpoints} checkpoints; event log "
                f"+{events / 1e6:.2f} MB"
            )
            print(f"    run 1 {m0:6.2f} ms, run {runs} {m1:6.2f} ms  x{mr:.2f}   (target <= 1.3)")


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--message-bytes", type=int, default=2000)
    ns = p.parse_args()
    asyncio.run(main_async(ns.runs, ns.message_bytes))


if __name__ == "__main__":
    main()
