#!/usr/bin/env python
"""What the payload codec (``--payload-keys``) costs, in one process run.

Two meshes on the same servers (etcd, NATS, Valkey as real processes), each a gateway
and a runtime as real processes: one without the codec, one with it. Sequential runs
through the public API (``runs.wait``), two workloads:

  * chain10: the 10-node trivial graph (``bench/run_latency.py``), a new thread per run
    (11 checkpoints, ~25 events per run, tiny values);
  * chat 4 KB: one node, a new thread per run whose input is a 4 KB message (the
    message travels in the run record, the checkpoint blobs and the events).

The two meshes take turns run by run (the machine is shared: both see the same load);
p50 and runs/s are printed as min (max) / median of the rounds (``--rounds``, default 3);
runs/s is runs over the time the mesh's own runs took. Then the codec alone: seal and open per KB
(AES-256-GCM, ``mesh_core.security.PayloadCodec``) for a few value sizes.

    python bench/payload_codec.py [--runs 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mesh_cli.launcher import ServiceProcess  # noqa: E402
from mesh_client import MeshClient  # noqa: E402
from mesh_core.localservers import LocalServers  # noqa: E402
from mesh_core.security import PayloadCodec  # noqa: E402

MESSAGE = "x" * 4096


class Figures(NamedTuple):
    p50: float  # ms
    rps: float
    cpu: float  # ms of gateway + runtime CPU per run


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(p / 100 * (len(xs) - 1)))]


Workload = Callable[[MeshClient], Any]


async def chain10(client: MeshClient) -> None:
    out = await client.runs.wait(None, "chain10", input={"n": 0})
    assert out["n"] == 10, out


async def chat4k(client: MeshClient) -> None:
    out = await client.runs.wait(
        None, "chat", input={"messages": [{"role": "user", "content": MESSAGE}]}
    )
    assert out["turns"] == 1, out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Mesh:
    name: str
    procs: list[ServiceProcess]  # gateway, runtime

    @property
    def address(self) -> str:
        return self.procs[0].address

    def cpu(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)


async def measure(meshes: list[Mesh], work: Workload, runs: int) -> dict[str, Figures]:
    """Per mesh: p50, runs/s and CPU per run (gateway + runtime) of ``runs`` sequential
    runs after a warm-up. The meshes take turns run by run, so both see the same load of
    this shared machine; runs/s is ``runs`` over the time the mesh's own runs took."""
    clients = {m.name: MeshClient(m.address, "bench-key") for m in meshes}
    lat: dict[str, list[float]] = {m.name: [] for m in meshes}
    try:
        for client in clients.values():
            for _ in range(20):
                await work(client)
        cpu0 = {m.name: m.cpu() for m in meshes}
        for _ in range(runs):
            for name, client in clients.items():
                s = time.perf_counter()
                await work(client)
                lat[name].append(time.perf_counter() - s)
        return {
            m.name: Figures(
                pct(lat[m.name], 50) * 1e3,
                runs / sum(lat[m.name]),
                (m.cpu() - cpu0[m.name]) / runs * 1e3,
            )
            for m in meshes
        }
    finally:
        for client in clients.values():
            await client.close()


def start_mesh(servers: LocalServers, prefix: str, keys: str | None) -> Mesh:
    env = {
        **servers.env(),
        "LGMESH_PREFIX": prefix,
        "LGMESH_API_KEYS": "bench=bench-key",
        "LGMESH_LOG_LEVEL": "WARNING",
        **({"LGMESH_PAYLOAD_KEYS": keys} if keys else {}),
    }
    graphs = str(ROOT / "bench" / "graphs.yaml")
    rt = ServiceProcess(
        f"runtime-{prefix}", ["runtime", "--port", "0", "--graphs", graphs], env, cwd=str(ROOT)
    ).start()
    gw = ServiceProcess(f"gateway-{prefix}", ["gateway", "--port", "0"], env, cwd=str(ROOT))
    return Mesh(prefix, [gw.start(), rt])


def summary(name: str, rounds: list[Figures]) -> Figures:
    p50s, rps = [r.p50 for r in rounds], [r.rps for r in rounds]
    med = Figures(
        statistics.median(p50s), statistics.median(rps), statistics.median(r.cpu for r in rounds)
    )
    print(
        f"  {name:<7} p50 min {min(p50s):6.2f} / median {med.p50:6.2f} ms   "
        f"runs/s max {max(rps):6.1f} / median {med.rps:6.1f}   "
        f"CPU/run (gateway+runtime) median {med.cpu:5.2f} ms"
    )
    return med


async def mesh_cost(servers: LocalServers, keys: str, runs: int, rounds: int) -> None:
    meshes = [start_mesh(servers, "plain", None), start_mesh(servers, "sealed", keys)]
    try:
        for title, work in (("chain10", chain10), ("chat 4 KB", chat4k)):
            print(f"-- {title}: {runs} sequential runs x {rounds} rounds, new thread per run")
            results: dict[str, list[Figures]] = {m.name: [] for m in meshes}
            for _ in range(rounds):
                for name, figures in (await measure(meshes, work, runs)).items():
                    results[name].append(figures)
            plain = summary("plain", results["plain"])
            sealed = summary("sealed", results["sealed"])
            print(
                f"  codec (medians): p50 {sealed.p50 - plain.p50:+.2f} ms "
                f"({(sealed.p50 / plain.p50 - 1) * 100:+.1f}%), "
                f"runs/s {(sealed.rps / plain.rps - 1) * 100:+.1f}%, "
                f"CPU/run {sealed.cpu - plain.cpu:+.2f} ms"
            )
    finally:
        for m in meshes:
            for proc in m.procs:
                proc.stop()


def codec_cost() -> None:
    codec = PayloadCodec([os.urandom(32), os.urandom(32)])
    print("-- the codec alone (AES-256-GCM, one process, one core)")
    for size in (256, 4096, 65536, 1 << 20):
        data = os.urandom(size)
        n = max(50, (64 << 20) // max(size, 4096) // 4)
        t0 = time.perf_counter()
        sealed = [codec.seal(data, b"thread-1") for _ in range(n)]
        seal = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for s in sealed:
            codec.open(s, b"thread-1")
        opened = (time.perf_counter() - t0) / n
        kb = size / 1024
        print(
            f"  {size:>8} B: seal {seal * 1e6:8.1f} us ({seal * 1e6 / kb:6.2f} us/KB)   "
            f"open {opened * 1e6:8.1f} us ({opened * 1e6 / kb:6.2f} us/KB)   +{len(sealed[0]) - size} B"
        )


async def main_async(runs: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp, LocalServers(Path(tmp)) as servers:
        keys = Path(tmp) / "payload-keys"
        keys.write_text(base64.b64encode(os.urandom(32)).decode() + "\n")
        await mesh_cost(servers, str(keys), runs, rounds)
    codec_cost()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    ns = p.parse_args()
    asyncio.run(main_async(ns.runs, ns.rounds))


if __name__ == "__main__":
    main()
