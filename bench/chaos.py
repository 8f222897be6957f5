"""Randomized chaos soak: runs keep flowing while processes and servers die around them.

Starts real etcd, NATS and Valkey (append-only file), 3 runtimes (owner + worker) and
2 gateways, and drives runs (linear graphs whose nodes record each start, and Send
fan-outs) from concurrent clients while it:

* SIGKILLs random runtimes (each restarted at once as a new process),
* SIGSTOPs the owner of a live run past the lease TTL, then SIGCONTs it,
* SIGKILLs a gateway (its clients move to the other one and join from their cursor),
* stops etcd, NATS and Valkey for 5 s each (same port and data dir on return).

It prints runs completed / wrong / lost, committed steps executed again, and the
failover latency (fault -> next event of each affected run), and exits non-zero if
any run was lost or wrong (final state different from in-process LangGraph).

    python bench/chaos.py [--runs 100] [--kills 15] [--pauses 3] [--ttl 3] [--seed N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mesh_cli.launcher import ServiceProcess  # noqa: E402
from mesh_client import MeshClient  # noqa: E402
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer  # noqa: E402
from mesh_core.adapters.redis.client import connect_redis  # noqa: E402
from mesh_core.localservers import LocalServers  # noqa: E402
from tests.faults import graphs  # noqa: E402

GRAPHS = str(ROOT / "tests" / "faults" / "graphs.yaml")
API_KEY = "chaos-key"
TENANT = "chaos"


@dataclass
class RunResult:
    label: str
    thread_id: str
    graph: str
    run_id: str = ""
    status: str = ""
    values: Any = None
    expected: Any = None
    events: list[tuple[float, int, str]] = field(default_factory=list)  # (t, seq, runtime)
    config: dict[str, Any] = field(default_factory=dict)


class Mesh:
    def __init__(self, servers: LocalServers, tmp: Path, ttl: int) -> None:
        self.servers = servers
        self.tmp = tmp
        self.ttl = ttl
        self.env = {
            **servers.env(),
            "LGMESH_PREFIX": "chaos",
            "LGMESH_API_KEYS": f"{TENANT}={API_KEY}",
            "LGMESH_LOG_LEVEL": "WARNING",
        }
        self.runtimes: dict[str, ServiceProcess] = {}
        self.gateways: list[ServiceProcess] = []
        self.by_pid: dict[int, str] = {}

    def start_runtime(self, name: str) -> ServiceProcess:
        proc = ServiceProcess(
            name,
            [
                "runtime",
                "--port",
                "0",
                "--graphs",
                GRAPHS,
                "--runtime-id",
                name,
                "--lease-ttl",
                str(self.ttl),
                "--drain-timeout",
                "5",
            ],
            self.env,
            log_file=self.tmp / f"{name}.log",
            cwd=str(ROOT),
        ).start()
        self.runtimes[name] = proc
        self.by_pid[proc.pid] = name
        return proc

    def start_gateway(self, i: int) -> ServiceProcess:
        proc = ServiceProcess(
            f"gateway-{i}",
            ["gateway", "--port", "0"],
            self.env,
            log_file=self.tmp / f"gateway-{i}.log",
            cwd=str(ROOT),
        ).start()
        if i < len(self.gateways):
            self.gateways[i] = proc
        else:
            self.gateways.append(proc)
        return proc

    def stop(self) -> None:
        for p in [*self.gateways, *self.runtimes.values()]:
            p.stop(grace=5)


class Soak:
    def __init__(self, args: argparse.Namespace, mesh: Mesh) -> None:
        self.args = args
        self.mesh = mesh
        self.rng = random.Random(args.seed)
        self.results: list[RunResult] = []
        self.faults: list[tuple[float, str, str]] = []  # (time, kind, runtime or server)
        self.clients = [MeshClient(g.address, API_KEY) for g in mesh.gateways]
        self.done = asyncio.Event()
        self.faults_done = asyncio.Event()
        self.live: dict[str, RunResult] = {}  # run_id -> result (running now)

    def client(self, i: int) -> MeshClient:
        return self.clients[i % len(self.clients)]

    async def refresh_client(self, i: int) -> None:
        gw = self.mesh.gateways[i]
        old = self.clients[i]
        self.clients[i] = MeshClient(gw.address, API_KEY)
        await old.close()

    # -- clients ---------------------------------------------------------------------
    async def drive(self, worker: int, count: int) -> None:
        """Run after run until this worker did ``count`` and every planned fault happened."""
        n = -1
        while True:
            n += 1
            if n >= count and self.faults_done.is_set():
                return
            graph = "fan" if self.rng.random() < 0.3 else "chain"
            payload = {"n": 6} if graph == "fan" else {"step": 0}
            label = f"w{worker}-{n}"
            conf = {"delay": 0.6 if graph == "fan" else 0.3, "count_key": f"chaos:starts:{label}"}
            if graph == "chain":
                conf["steps"] = 8
            config = {"configurable": conf}
            res = RunResult(label=label, thread_id="", graph=graph, config=config)
            res.expected = await graphs.expected_state(
                graphs.fan if graph == "fan" else graphs.chain, payload, config
            )
            self.results.append(res)
            await self.one_run(worker, res, payload, config)

    async def one_run(
        self, worker: int, res: RunResult, payload: dict[str, Any], config: dict[str, Any]
    ) -> None:
        gw = worker
        cursor = 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            client = self.client(gw)
            try:
                if not res.thread_id:
                    res.thread_id = (await client.threads.create())["thread_id"]
                if not res.run_id:
                    known = await client.runs.list(res.thread_id, limit=5)
                    if known:
                        res.run_id = known[0]["run_id"]
                if res.run_id:
                    parts = client.runs.join_stream(res.thread_id, res.run_id, last_event_id=cursor)
                else:
                    parts = client.runs.stream(
                        res.thread_id,
                        res.graph,
                        input=payload,
                        config=config,
                        stream_mode=["updates"],
                    )
                async for p in parts:
                    if p.seq <= cursor:
                        continue
                    cursor = p.seq
                    res.run_id = p.run_id
                    self.live[p.run_id] = res
                    runtime = (p.lifecycle or {}).get("runtime_id", "")
                    res.events.append((time.monotonic(), p.seq, runtime))
                    if p.event == "lifecycle" and p.lifecycle.get("kind") == "ended":
                        res.status = p.lifecycle.get("status", "")
                        self.live.pop(p.run_id, None)
                        break
                if res.status:
                    state = await client.threads.get_state(res.thread_id)
                    res.values = state["values"]
                    return
            except grpc.aio.AioRpcError as err:
                if err.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.CANCELLED,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.INTERNAL,
                ):
                    res.status = f"rpc-error {err.code().name}: {err.details()}"
                    return
            gw += 1  # this gateway failed us: try the other one
            await asyncio.sleep(0.3)
        res.status = res.status or "lost (no end within 300 s)"

    # -- faults ------------------------------------------------------------------------
    def owner_of_live_run(self) -> str | None:
        names = [
            r.events[-1][2] or self._last_runtime(r) for r in list(self.live.values()) if r.events
        ]
        names = [n for n in names if n in self.mesh.runtimes]
        return self.rng.choice(names) if names else None

    @staticmethod
    def _last_runtime(r: RunResult) -> str:
        for _, _, rt in reversed(r.events):
            if rt:
                return rt
        return ""

    async def faults_loop(self) -> None:
        a = self.args
        plan = ["kill"] * a.kills + ["pause"] * a.pauses + ["gateway"] + ["etcd", "nats", "redis"]
        self.rng.shuffle(plan)
        gap = max(2.0, a.spread / len(plan))
        await asyncio.sleep(3.0)
        try:
            for kind in plan:
                await self.fault(kind)
                await asyncio.sleep(gap * (0.5 + self.rng.random()))
        finally:
            self.faults_done.set()

    async def fault(self, kind: str) -> None:
        mesh = self.mesh
        if kind == "kill":
            name = self.owner_of_live_run() or self.rng.choice(list(mesh.runtimes))
            mesh.runtimes[name].kill()
            self.faults.append((time.monotonic(), "kill", name))
            await asyncio.to_thread(mesh.start_runtime, name)
        elif kind == "pause":
            name = self.owner_of_live_run() or self.rng.choice(list(mesh.runtimes))
            proc = mesh.runtimes[name]
            proc.signal(signal.SIGSTOP)
            self.faults.append((time.monotonic(), "pause", name))
            await asyncio.sleep(self.args.ttl + 2)
            proc.signal(signal.SIGCONT)
        elif kind == "gateway":
            i = self.rng.randrange(len(mesh.gateways))
            mesh.gateways[i].kill()
            self.faults.append((time.monotonic(), "gateway", f"gateway-{i}"))
            await asyncio.to_thread(mesh.start_gateway, i)
            await self.refresh_client(i)
        else:
            server = {
                "etcd": mesh.servers.etcd,
                "nats": mesh.servers.nats,
                "redis": mesh.servers.redis,
            }[kind]
            await asyncio.to_thread(server.stop)
            self.faults.append((time.monotonic(), kind, kind))
            await asyncio.sleep(5.0)
            await asyncio.to_thread(server.start)

    # -- checks --------------------------------------------------------------------------
    def failover_latencies(self) -> list[float]:
        """For each runtime fault, each run it was driving: seconds until its next event."""
        out: list[float] = []
        for at, kind, name in self.faults:
            if kind not in ("kill", "pause"):
                continue
            for r in self.results:
                before = [e for e in r.events if e[0] <= at]
                after = [e for e in r.events if e[0] > at]
                if not before or not after or self._last_of(before) != name:
                    continue
                out.append(after[0][0] - at)
        return out

    @staticmethod
    def _last_of(events: list[tuple[float, int, str]]) -> str:
        for _, _, rt in reversed(events):
            if rt:
                return rt
        return ""

    async def committed_reexecutions(self) -> int:
        """Node starts that came after the checkpoint holding that node's result."""
        redis = connect_redis(self.mesh.servers.redis_url)
        saver = MeshCheckpointer(redis, prefix="chaos")
        bad = 0
        missing = 0
        try:
            for r in self.results:
                if not r.thread_id:
                    continue
                key = r.config["configurable"]["count_key"]
                starts: dict[str, list[float]] = {}
                for field_, at in (await redis.hgetall(key)).items():
                    node = field_.decode().split("|")[0]
                    starts.setdefault(node, []).append(float(at))
                committed: dict[str, float] = {}
                scoped = f"{TENANT}:{r.thread_id}"
                async for tup in saver.alist({"configurable": {"thread_id": scoped}}):
                    ts = datetime.fromisoformat(tup.checkpoint["ts"]).timestamp()
                    for node in _committed_nodes(r.graph, tup.checkpoint["channel_values"]):
                        committed[node] = min(committed.get(node, ts), ts)
                if not starts or not committed:
                    missing += 1  # nothing to compare: the count itself would be blind
                for node, times in starts.items():
                    if node in committed:
                        bad += sum(1 for t in times if t > committed[node] + 0.05)
        finally:
            await redis.aclose()
        if missing:
            raise RuntimeError(f"{missing} runs have no node starts or no commits to compare")
        return bad


def _committed_nodes(graph: str, values: dict[str, Any]) -> list[str]:
    """Nodes whose result a checkpoint with these channel values holds."""
    if graph == "chain":
        step = values.get("step")
        return [f"work{step}"] if isinstance(step, int) and step > 0 else []
    results = values.get("results") or []
    return [f"job{i}" for i in range(6)] if len(results) >= 6 else []


async def main_async(args: argparse.Namespace) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lgmesh-chaos-"))
    servers = LocalServers(tmp / "infra", redis_aof=True).start()
    mesh = Mesh(servers, tmp, args.ttl)
    started = time.monotonic()
    try:
        for i in range(3):
            mesh.start_runtime(f"rt{i + 1}")
        for i in range(2):
            mesh.start_gateway(i)
        soak = Soak(args, mesh)
        workers = args.clients
        per = -(-args.runs // workers)
        faults = asyncio.create_task(soak.faults_loop())
        await asyncio.gather(*(soak.drive(w, per) for w in range(workers)))
        soak.done.set()
        await faults
        rex = await soak.committed_reexecutions()
        lat = sorted(soak.failover_latencies())
        completed = [r for r in soak.results if r.status == "success"]
        wrong = [r for r in completed if r.values != r.expected]
        lost = [r for r in soak.results if r.status != "success"]
        kinds = [k for _, k, _ in soak.faults]
        print(
            f"chaos soak: {len(soak.results)} runs in {time.monotonic() - started:.0f} s, TTL {args.ttl} s"
        )
        print(
            f"faults: {kinds.count('kill')} runtime SIGKILLs, {kinds.count('pause')} owner "
            f"SIGSTOPs past TTL, {kinds.count('gateway')} gateway SIGKILL, etcd/NATS/Valkey "
            f"stopped 5 s each ({', '.join(k for k in kinds if k in ('etcd', 'nats', 'redis'))})"
        )
        print(f"runs completed {len(completed)} / wrong {len(wrong)} / lost {len(lost)}")
        print(f"committed steps executed again: {rex}")
        if lat:
            p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
            print(
                f"failover latency (fault -> next event, {len(lat)} runs hit): "
                f"min {lat[0]:.2f} s, p50 {statistics.median(lat):.2f} s, p99 {p99:.2f} s "
                f"(target p99 <= {args.ttl + 1} s)"
            )
        for r in (wrong + lost)[:10]:
            print(f"  {r.label} {r.graph} thread {r.thread_id} run {r.run_id}: {r.status}")
        for c in soak.clients:
            await c.close()
        return 1 if wrong or lost else 0
    finally:
        mesh.stop()
        servers.stop()
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"logs kept in {tmp}")


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--runs", type=int, default=100)
    p.add_argument("--clients", type=int, default=10)
    p.add_argument("--kills", type=int, default=15)
    p.add_argument("--pauses", type=int, default=3)
    p.add_argument("--ttl", type=int, default=3)
    p.add_argument("--spread", type=float, default=90.0, help="seconds over which faults happen")
    p.add_argument("--seed", type=int, default=int(os.environ.get("CHAOS_SEED", "0")) or None)
    p.add_argument("--keep", action="store_true", help="keep the logs")
    args = p.parse_args()
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    print(f"seed {args.seed}")
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
