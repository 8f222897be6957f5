#!/usr/bin/env python
"""Per-run latency of a 10-node trivial graph, three ways, in one process run:

  (a) in-process LangGraph with InMemorySaver
  (b) in-process LangGraph with the mesh checkpointer on Redis (real valkey)
  (c) through the mesh: client -> gateway -> runtime (real processes, etcd, NATS, Redis)

All use durability="sync" (what the mesh uses). Prints p50/p99 and runs/s, the ratios
c/a and c/b, and the CPU time per run of every process involved (read from /proc: the
client, gateway, runtime, Valkey, etcd, NATS) against in-process LangGraph's. Each
measurement is repeated (``--rounds``, default 3) and the median round is reported.
Targets: c/a <= 2.0 at p50; mesh CPU per run <= 2.5x in-process.

    python bench/run_latency.py [--runs 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
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


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


def report(name: str, lat: list[float], wall: float) -> dict[str, float]:
    p50, p99 = pct(lat, 50) * 1e3, pct(lat, 99) * 1e3
    rps = len(lat) / wall
    print(f"  {name:<44} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   {rps:8.1f} runs/s")
    return {"p50": p50, "p99": p99, "rps": rps}


async def inprocess(saver: object, runs: int, hot: bool) -> tuple[list[float], float]:
    """``hot``: every run on one thread (a conversation); else a new thread per run."""
    graph = build_chain(10).compile(checkpointer=saver)  # type: ignore[arg-type]
    one = str(uuid.uuid4())

    def cfg() -> dict[str, object]:
        return {"configurable": {"thread_id": one if hot else str(uuid.uuid4())}}

    for _ in range(20):  # warm up
        await graph.ainvoke({"n": 0}, cfg(), durability="sync")
    lat = []
    t0 = time.perf_counter()
    for _ in range(runs):
        s = time.perf_counter()
        out = await graph.ainvoke({"n": 0}, cfg(), durability="sync")
        lat.append(time.perf_counter() - s)
        assert out["n"] == 10
    return lat, time.perf_counter() - t0


async def through_mesh(address: str, runs: int, hot: bool) -> tuple[list[float], float]:
    client = MeshClient(address, "bench-key")
    one = (await client.threads.create())["thread_id"] if hot else None
    for _ in range(20):
        await client.runs.wait(one, "chain10", input={"n": 0})
    lat = []
    t0 = time.perf_counter()
    for _ in range(runs):
        s = time.perf_counter()
        out = await client.runs.wait(one, "chain10", input={"n": 0})
        lat.append(time.perf_counter() - s)
        assert out["n"] == 10, out
    wall = time.perf_counter() - t0
    await client.close()
    return lat, wall


async def main_async(runs: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalServers(Path(tmp)) as servers:
        print(f"10-node trivial graph, {runs} sequential runs x {rounds} rounds, durability=sync")
        env = {
            **servers.env(),
            "LGMESH_PREFIX": "bench",
            "LGMESH_API_KEYS": "bench=bench-key",
            "LGMESH_TENANT_LIMITS": str(ROOT / "bench" / "limits.yaml"),
            "LGMESH_LOG_LEVEL": "WARNING",
        }
        graphs = str(ROOT / "bench" / "graphs.yaml")
        rt = ServiceProcess(
            "runtime", ["runtime", "--port", "0", "--graphs", graphs], env, cwd=str(ROOT)
        ).start()
        gw = ServiceProcess("gateway", ["gateway", "--port", "0"], env, cwd=str(ROOT)).start()
        me = os.getpid()
        pids = {
            "client": me,
            "gateway": gw.pid,
            "runtime": rt.pid,
            "valkey": servers.redis.proc.pid,  # type: ignore[union-attr]
            "etcd": servers.etcd.proc.pid,  # type: ignore[union-attr]
            "nats": servers.nats.proc.pid,  # type: ignore[union-attr]
        }
        try:
            for hot in (False, True):
                what = "one thread, consecutive runs" if hot else "a new thread per run"
                print(f"-- {what}")
                await _compare(servers, gw.address, pids, runs, rounds, hot)
        finally:
            gw.stop()
            rt.stop()


async def _compare(
    servers: LocalServers, address: str, pids: dict[str, int], runs: int, rounds: int, hot: bool
) -> None:
    me = os.getpid()
    a_rounds, a_cpu = [], []
    for _ in range(rounds):
        c0 = cpu_seconds(me)
        a_rounds.append(await inprocess(InMemorySaver(), runs, hot))
        a_cpu.append((cpu_seconds(me) - c0) / (runs + 20))
    a = report("(a) in-process, InMemorySaver", *_median_round(a_rounds))
    redis = connect_redis(servers.redis_url)
    saver = MeshCheckpointer(redis, prefix="bench")
    b_rounds = [await inprocess(saver, runs, hot) for _ in range(rounds)]
    b = report("(b) in-process, mesh checkpointer on Redis", *_median_round(b_rounds))
    await redis.aclose()
    c_rounds, c_cpu = [], []
    for _ in range(rounds):
        before = {k: cpu_seconds(p) for k, p in pids.items()}
        c_rounds.append(await through_mesh(address, runs, hot))
        c_cpu.append({k: (cpu_seconds(p) - before[k]) / (runs + 20) for k, p in pids.items()})
    c = report("(c) through gateway + runtime", *_median_round(c_rounds))
    print(f"  ratio c/a p50: {c['p50'] / a['p50']:.2f}   (target <= 2.0)")
    print(f"  ratio c/b p50: {c['p50'] / b['p50']:.2f}")
    print(f"  ratio c/a runs/s: {a['rps'] / c['rps']:.2f}x slower")
    a_ms = statistics.median(a_cpu) * 1e3
    per = {k: statistics.median(r[k] for r in c_cpu) * 1e3 for k in pids}
    total = sum(per.values())
    parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(per.items(), key=lambda kv: -kv[1]))
    print(f"  CPU per run: in-process {a_ms:.2f} ms; mesh {total:.2f} ms ({parts})")
    print(f"  ratio CPU mesh / in-process: {total / a_ms:.2f}   (target <= 2.5)")


def _median_round(rounds: list[tuple[list[float], float]]) -> tuple[list[float], float]:
    """The round with the median p50."""
    ordered = sorted(rounds, key=lambda r: pct(r[0], 50))
    return ordered[len(ordered) // 2]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--rounds", type=int, default=3)
    ns = p.parse_args()
    asyncio.run(main_async(ns.runs, ns.rounds))


if __name__ == "__main__":
    main()
