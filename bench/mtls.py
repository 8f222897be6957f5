#!/usr/bin/env python
"""What mutual TLS and tenant tokens cost on the run path, with and without, in one run.

Two meshes over the same local servers (etcd, NATS, Valkey), each a gateway and a
runtime (plus an LLM gateway and a tool service): one in plaintext (``MeshCluster(...,
tls=False)``, the baseline), one as deployed (mutual TLS on every internal hop, a
tenant token per call). Rounds alternate between the two so both see the same machine.

* ``chain10``: a 10-node trivial graph; the internal hop is gateway -> runtime.
* ``agent``: the demo model + tools loop (scripted model): gateway -> runtime, then the
  runtime -> LLM gateway (twice) and -> tool service (once) per run.

For each: p50 of sequential runs, and runs/s with ``--concurrency`` clients; each the
median and best of ``--rounds`` rounds (the best is the steadier figure on a
shared machine).

    python bench/mtls.py [--runs 200] [--rounds 3] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mesh_client import MeshClient  # noqa: E402
from mesh_core.localservers import LocalServers  # noqa: E402
from tests.e2e.cluster import MeshCluster  # noqa: E402

GRAPHS = """graphs:
  chain10: bench.graphs_bench:chain10
  agent: mesh_demo.graphs:agent
"""
#: no run-rate limit in the way of the throughput figures
LIMITS = "defaults: {runs_per_second: 100000, run_burst: 100000, concurrent_runs: 1000}\n"
INPUTS: dict[str, Any] = {
    "chain10": {"n": 0},
    "agent": {"messages": [{"type": "human", "content": "etcd leases"}]},
}


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


async def sequential(client: MeshClient, graph: str, runs: int) -> float:
    """p50 (ms) of ``runs`` runs one after the other, each on a new thread."""
    lat = []
    for _ in range(runs):
        s = time.perf_counter()
        await client.runs.wait(None, graph, input=INPUTS[graph])
        lat.append(time.perf_counter() - s)
    return pct(lat, 50) * 1e3


async def concurrent(client: MeshClient, graph: str, runs: int, concurrency: int) -> float:
    """Runs per second with ``concurrency`` runs in flight."""
    left = [runs]

    async def worker() -> None:
        while left[0] > 0:
            left[0] -= 1
            await client.runs.wait(None, graph, input=INPUTS[graph])

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return runs / (time.perf_counter() - t0)


def _cluster(servers: LocalServers, tmp: Path, tls: bool) -> MeshCluster:
    name = "mtls" if tls else "plain"
    (tmp / name).mkdir()
    c = MeshCluster(
        servers,
        f"bench-{name}",
        tmp / name,
        graphs=str(tmp / "graphs.yaml"),
        extra_env={"LGMESH_LOG_LEVEL": "WARNING", "LGMESH_TENANT_LIMITS": str(tmp / "limits.yaml")},
        tls=tls,
    )
    c.add_llm_gateway()
    c.add_tools()
    return c.start(runtimes=1, gateways=1)


async def main_async(runs: int, rounds: int, concurrency: int) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir, LocalServers(Path(tmp_dir) / "infra") as srv:
        tmp = Path(tmp_dir)
        (tmp / "graphs.yaml").write_text(GRAPHS)
        (tmp / "limits.yaml").write_text(LIMITS)
        clusters = {"plaintext": _cluster(srv, tmp, False), "mTLS": _cluster(srv, tmp, True)}
        clients = {k: c.client() for k, c in clusters.items()}
        try:
            print(
                f"{runs} runs per round (sequential p50; runs/s with {concurrency} in flight), "
                f"{rounds} rounds, modes alternating"
            )
            for graph in INPUTS:
                n = runs if graph == "chain10" else max(20, runs // 4)
                for client in clients.values():  # warm up: channels, handshakes, imports
                    await sequential(client, graph, 10)
                p50: dict[str, list[float]] = {k: [] for k in clients}
                rps: dict[str, list[float]] = {k: [] for k in clients}
                for r in range(rounds):
                    order = list(clients) if r % 2 == 0 else list(reversed(clients))
                    for mode in order:
                        p50[mode].append(await sequential(clients[mode], graph, n))
                        rps[mode].append(await concurrent(clients[mode], graph, n, concurrency))
                print(f"-- {graph} ({n} runs per round)")
                for mode in clients:
                    print(
                        f"  {mode:<10} p50 median {statistics.median(p50[mode]):7.2f} ms "
                        f"(min {min(p50[mode]):6.2f})   runs/s median "
                        f"{statistics.median(rps[mode]):7.1f} (max {max(rps[mode]):6.1f})"
                    )
                for label, pick, best in (
                    ("median", statistics.median, statistics.median),
                    ("best", min, max),
                ):
                    d_p50 = pick(p50["mTLS"]) - pick(p50["plaintext"])
                    r_rps = best(rps["mTLS"]) / best(rps["plaintext"])
                    print(
                        f"  mTLS ({label} of rounds): {d_p50:+.2f} ms at p50, "
                        f"runs/s x{r_rps:.2f} of plaintext"
                    )
        finally:
            for c in clusters.values():
                await c.aclose_clients()
                c.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=8)
    ns = p.parse_args()
    asyncio.run(main_async(ns.runs, ns.rounds, ns.concurrency))


if __name__ == "__main__":
    main()
