"""Benchmark: Send fan-out run by remote worker processes vs in-process LangGraph.

Two workloads, same graph shape (START -> N x Send("work") -> reduce):

* CPU: 200 tasks, each burning ~10 ms of pure-Python CPU. In-process LangGraph (one
  process, the GIL) next to the mesh with 1 and 2 worker processes; wall times and
  the speed-up over in-process.
* I/O: 2,000 tasks, each awaiting 50 ms, on 2 workers x ``--io-concurrency`` slots;
  wall time next to the ideal for that concurrency (ceil(2000 / slots) x 50 ms).
  The owner's CPU per task (LangGraph's commit + saving the task's writes, plus
  publishing and reading the reply) bounds how fast one run can go, so with many
  slots the owner, not the workers, sets the pace.

Every run uses the mesh's Redis checkpointer with durability "sync"; etcd, nats-server
and Valkey are started here on free loopback ports, and the workers are
``lgmesh runtime --role worker`` processes started by the mesh's launcher. Each figure is the median of
``--repeat`` runs after one warm-up run.

    python bench/fanout.py [--repeat 3] [--io-concurrency 25 50] [--gc-threshold 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import operator
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

import redis.asyncio as aredis
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from mesh_cli.launcher import ServiceProcess, stop_all  # noqa: E402
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer  # noqa: E402
from mesh_core.config import InfraSettings  # noqa: E402
from mesh_core.localservers import LocalServers  # noqa: E402
from runtime_svc.remote import RemoteExecutor, TaskQueueSettings  # noqa: E402

CPU_TASKS = 200
CPU_MS = 10.0
IO_TASKS = 2000
IO_SECONDS = 0.05


class State(TypedDict, total=False):
    n: int
    units: int
    kind: str
    done: Annotated[list[int], operator.add]
    total: int


class Item(TypedDict):
    i: int
    units: int


def burn(units: int) -> int:
    acc = 0
    for k in range(units):
        acc = (acc * 31 + k) % 1_000_003
    return acc


def cpu_work(item: Item) -> dict[str, Any]:
    # sync, as CPU-bound user code is: LangGraph runs it in a thread
    burn(item["units"])
    return {"done": [item["i"]]}


async def io_work(item: Item) -> dict[str, Any]:
    await asyncio.sleep(IO_SECONDS)
    return {"done": [item["i"]]}


def fan(state: State) -> list[Send]:
    node = "cpu" if state["kind"] == "cpu" else "io"
    return [Send(node, {"i": i, "units": state.get("units", 0)}) for i in range(state["n"])]


def reduce_(state: State) -> dict[str, Any]:
    return {"total": len(state.get("done", []))}


def build() -> StateGraph[State]:
    b: StateGraph[State] = StateGraph(State)
    b.add_node("cpu", cpu_work)
    b.add_node("io", io_work)
    b.add_node("reduce", reduce_)
    b.add_conditional_edges(START, fan, ["cpu", "io"])
    b.add_edge("cpu", "reduce")
    b.add_edge("io", "reduce")
    b.add_edge("reduce", END)
    return b


def calibrate(ms: float) -> int:
    """Iterations of ``burn`` that take ``ms`` of CPU here."""
    units = 10_000
    while True:
        t = time.process_time()
        burn(units)
        took = time.process_time() - t
        if took > 0.05:
            return max(1, int(units * ms / 1000 / took))
        units *= 2


def start_worker(
    settings: InfraSettings, wid: str, concurrency: int, graphs: Path
) -> ServiceProcess:
    """``lgmesh runtime --role worker`` serving the ``fanout`` graph of this file."""
    env = {
        "LGMESH_ETCD_URL": settings.etcd_url,
        "LGMESH_NATS_URL": settings.nats_url,
        "LGMESH_REDIS_URL": settings.redis_url,
        "LGMESH_PREFIX": settings.prefix,
    }
    args = ["runtime", "--role", "worker", "--graphs", str(graphs), "--runtime-id", wid]
    args += ["--worker-concurrency", str(concurrency), "--log-level", "WARNING"]
    return ServiceProcess(wid, args, env, cwd=str(ROOT)).start()


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stop(procs: list[ServiceProcess]) -> None:
    stop_all(procs, grace=20)


async def timed(
    coro_factory: Any, repeat: int, procs: list[ServiceProcess] | None = None
) -> tuple[float, float, list[float]]:
    """Median wall time of ``repeat`` runs after a warm-up, and the CPU seconds per run
    this process and each worker process spent."""
    await coro_factory()  # warm-up
    pids = [p.pid for p in procs or []]
    own0, w0 = time.process_time(), [proc_cpu(pid) for pid in pids]
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await coro_factory()
        times.append(time.perf_counter() - t)
    own = (time.process_time() - own0) / repeat
    workers = [(proc_cpu(pid) - c) / repeat for pid, c in zip(pids, w0, strict=True)]
    return statistics.median(times), own, workers


def cpu_note(own: float, workers: list[float]) -> str:
    parts = [f"owner {own:.2f}"] + [f"w{i + 1} {c:.2f}" for i, c in enumerate(workers)]
    return "CPU s/run: " + ", ".join(parts)


async def main(args: argparse.Namespace) -> None:
    servers = LocalServers().start()  # etcd, nats-server, valkey in a temp dir
    graphs = servers.base_dir / "graphs.yaml"
    graphs.write_text(f"graphs:\n  fanout: {Path(__file__).resolve()}:build\n")
    procs: list[ServiceProcess] = []
    try:
        settings = InfraSettings(
            etcd_url=servers.etcd_url,
            nats_url=servers.nats_url,
            redis_url=servers.redis_url,
            prefix="bench",
        )
        pool = aredis.BlockingConnectionPool.from_url(settings.redis_url, max_connections=64)
        client = aredis.Redis(connection_pool=pool)
        cp = MeshCheckpointer(client, prefix=settings.prefix)
        graph = build().compile(checkpointer=cp)
        ex = RemoteExecutor(settings, cp, queue=TaskQueueSettings())
        await ex.start()
        units = calibrate(CPU_MS)
        print(f"owner gen-0 GC threshold: {gc.get_threshold()[0]}")

        def cfg() -> dict[str, Any]:
            return {"configurable": {"thread_id": uuid.uuid4().hex}}

        async def local(inp: dict[str, Any]) -> None:
            out = await graph.ainvoke(inp, cfg(), durability="sync")
            assert out["total"] == inp["n"]

        async def remote(inp: dict[str, Any], max_concurrency: int | None = None) -> None:
            async with ex.run(cfg(), graph_id="fanout", max_concurrency=max_concurrency) as c:
                out = await graph.ainvoke(inp, c, durability="sync")
            assert out["total"] == inp["n"]

        cpu = {"n": CPU_TASKS, "units": units, "kind": "cpu"}
        load = os.getloadavg()[0]
        print(
            f"CPU: {CPU_TASKS} Send tasks x ~{CPU_MS:.0f} ms pure-Python CPU "
            f"({units} iterations), median of {args.repeat}; "
            f"{os.cpu_count()} cores, load average {load:.2f} before the run"
        )
        t_local, own, _ = await timed(lambda: local(cpu), args.repeat)
        print(f"  in-process LangGraph      {t_local:7.3f} s   1.00x   {cpu_note(own, [])}")
        procs.append(start_worker(settings, "w1", args.cpu_concurrency, graphs))
        t_one, own, wcpu = await timed(lambda: remote(cpu), args.repeat, procs)
        print(
            f"  mesh, 1 worker process    {t_one:7.3f} s   {t_local / t_one:.2f}x   "
            f"{cpu_note(own, wcpu)}"
        )
        procs.append(start_worker(settings, "w2", args.cpu_concurrency, graphs))
        t_two, own, wcpu = await timed(lambda: remote(cpu), args.repeat, procs)
        print(
            f"  mesh, 2 worker processes  {t_two:7.3f} s   {t_local / t_two:.2f}x   "
            f"{cpu_note(own, wcpu)}   (target >= 1.6x)"
        )
        stop(procs)
        procs.clear()

        io = {"n": IO_TASKS, "kind": "io"}
        for per_worker in args.io_concurrency:
            slots = 2 * per_worker
            procs.extend(start_worker(settings, f"io{i}", per_worker, graphs) for i in range(2))
            ideal = math.ceil(IO_TASKS / slots) * IO_SECONDS
            print(
                f"I/O: {IO_TASKS} Send tasks x await {IO_SECONDS * 1e3:.0f} ms, "
                f"2 workers x {per_worker} slots = {slots}; "
                f"load average {os.getloadavg()[0]:.2f}"
            )
            t_io, own, wcpu = await timed(lambda: remote(io), args.repeat, procs)
            print(f"  mesh wall time            {t_io:7.3f} s   {cpu_note(own, wcpu)}")
            print(
                f"  ideal for {slots:3d} slots      {ideal:7.3f} s   ratio {t_io / ideal:.2f}x"
                f"   (target <= 1.5x)"
            )
            stop(procs)
            procs.clear()
        t_io_local, own, _ = await timed(lambda: local(io), 1)
        print(
            f"  in-process LangGraph      {t_io_local:7.3f} s   (all 2000 at once)   "
            f"{cpu_note(own, [])}"
        )
        await ex.stop()
        await client.aclose()
    finally:
        stop(procs)
        servers.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--cpu-concurrency", type=int, default=2)
    p.add_argument(
        "--io-concurrency", type=int, nargs="+", default=[25, 50], help="slots per worker"
    )
    p.add_argument(
        "--gc-threshold",
        type=int,
        default=100_000,
        help="gen-0 GC threshold of this (owner) process; 0 keeps Python's default",
    )
    args = p.parse_args()
    if args.gc_threshold:
        gc.set_threshold(args.gc_threshold, 50, 100)
    asyncio.run(main(args))
