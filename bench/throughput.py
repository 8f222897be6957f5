#!/usr/bin/env python
"""Runs per second with 16 concurrent clients: in-process asyncio vs the mesh.

  (a) in-process: 16 asyncio tasks run the 10-node graph with InMemorySaver
  (b) the mesh with 1 runtime: 16 clients -> gateway -> runtime
  (c) the mesh with 2 runtimes

Every run uses a new thread, durability="sync". Each figure is the median of
``--rounds`` (default 3) rounds of ``--seconds`` seconds; ratios against (a).
All processes share this machine's CPUs, so (c) shows what a second runtime adds
when nothing else is free, not what it adds on its own cores.

    python bench/throughput.py [--clients 16] [--seconds 8] [--rounds 3]
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

from langgraph.checkpoint.memory import InMemorySaver  # noqa: E402

from bench.graphs_bench import build_chain  # noqa: E402
from mesh_cli.launcher import ServiceProcess  # noqa: E402
from mesh_client import MeshClient  # noqa: E402
from mesh_core.localservers import LocalServers  # noqa: E402


async def _drive(worker, clients: int, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Runs/s of ``clients`` loops calling ``worker()`` for ``seconds``."""
    done = 0
    stop = time.perf_counter() + seconds

    async def loop() -> None:
        nonlocal done
        while time.perf_counter() < stop:
            await worker()
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(clients)))
    return done / (time.perf_counter() - t0)


async def inprocess(clients: int, seconds: float) -> float:
    graph = build_chain(10).compile(checkpointer=InMemorySaver())

    async def one() -> None:
        out = await graph.ainvoke(
            {"n": 0}, {"configurable": {"thread_id": str(uuid.uuid4())}}, durability="sync"
        )
        assert out["n"] == 10

    await _drive(one, clients, 1.0)  # warm up
    return await _drive(one, clients, seconds)


async def mesh(address: str, clients: int, seconds: float) -> float:
    conns = [MeshClient(address, "bench-key") for _ in range(4)]
    i = 0

    async def one() -> None:
        nonlocal i
        i += 1
        out = await conns[i % len(conns)].runs.wait(None, "chain10", input={"n": 0})
        assert out["n"] == 10

    try:
        await _drive(one, clients, 1.0)
        return await _drive(one, clients, seconds)
    finally:
        for c in conns:
            await c.close()


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


async def main_async(clients: int, seconds: float, rounds: int) -> None:
    print(f"{clients} concurrent clients, 10-node graph, new thread per run, durability=sync")
    a = _median([await inprocess(clients, seconds) for _ in range(rounds)])
    print(f"  (a) in-process asyncio, InMemorySaver   {a:8.1f} runs/s")
    with tempfile.TemporaryDirectory() as tmp, LocalServers(Path(tmp)) as servers:
        env = {
            **servers.env(),
            "LGMESH_PREFIX": "bench",
            "LGMESH_API_KEYS": "bench=bench-key",
            "LGMESH_TENANT_LIMITS": str(ROOT / "bench" / "limits.yaml"),
            "LGMESH_LOG_LEVEL": "WARNING",
        }
        graphs = str(ROOT / "bench" / "graphs.yaml")
        procs: list[ServiceProcess] = []
        try:
            procs.append(
                ServiceProcess(
                    "runtime-1",
                    ["runtime", "--port", "0", "--graphs", graphs, "--capacity", "256"],
                    env,
                    cwd=str(ROOT),
                ).start()
            )
            gw = ServiceProcess("gateway", ["gateway", "--port", "0"], env, cwd=str(ROOT)).start()
            procs.append(gw)
            b = _median([await mesh(gw.address, clients, seconds) for _ in range(rounds)])
            print(f"  (b) mesh, 1 runtime                     {b:8.1f} runs/s   b/a {b / a:.2f}")
            procs.append(
                ServiceProcess(
                    "runtime-2",
                    ["runtime", "--port", "0", "--graphs", graphs, "--capacity", "256"],
                    env,
                    cwd=str(ROOT),
                ).start()
            )
            await asyncio.sleep(1.5)  # the gateway sees the second runtime in its view
            c = _median([await mesh(gw.address, clients, seconds) for _ in range(rounds)])
            print(f"  (c) mesh, 2 runtimes                    {c:8.1f} runs/s   c/a {c / a:.2f}")
            print(f"  a second runtime adds x{c / b:.2f} (same 2 CPUs for everything)")
        finally:
            for p in reversed(procs):
                p.stop()


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--rounds", type=int, default=3)
    ns = p.parse_args()
    asyncio.run(main_async(ns.clients, ns.seconds, ns.rounds))


if __name__ == "__main__":
    main()
