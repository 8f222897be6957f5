"""Benchmark: MeshCheckpointer (Valkey, loopback) next to LangGraph's InMemorySaver.

Prints put and get-latest p50/p99 for

* a small checkpoint (a counter and a short string);
* a small checkpoint at history depth 1 and 200 (constant payload, growing history);
* a growing message list at step 1 and step 200 (one message appended per step,
  LangGraph stores the whole list as a new blob version each step).

Both savers are driven through their async API in the same process and run; the
Valkey server is started here (``mesh_core.localservers.redis_server``).

    python bench/checkpoint.py [--threads 40] [--samples 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis.asyncio as aredis
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, Checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.memory import InMemorySaver

from mesh_core.adapters.redis import MeshCheckpointer
from mesh_core.localservers import redis_server


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def fmt(samples: list[float]) -> str:
    return f"p50 {pct(samples, 0.5) * 1e3:7.3f} ms  p99 {pct(samples, 0.99) * 1e3:7.3f} ms"


class Case:
    def __init__(self) -> None:
        self.put: list[float] = []
        self.get: list[float] = []


def _checkpoint(values: dict[str, Any], versions: dict[str, Any], step: int) -> Checkpoint:
    ck = empty_checkpoint()
    ck["id"] = str(uuid6(clock_seq=step))
    ck["channel_values"] = values
    ck["channel_versions"] = versions
    return ck


async def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = await fn()
    return time.perf_counter() - t0, out


async def run_thread(
    saver: BaseCheckpointSaver[Any],
    steps: int,
    make_values: Callable[[int], dict[str, Any]],
    record: dict[int, Case],
    gets_per_step: int = 5,
) -> None:
    """One thread of ``steps`` checkpoints; samples put/get-latest at the steps in ``record``."""
    tid = uuid.uuid4().hex
    config: RunnableConfig = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    latest: RunnableConfig = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    version: Any = None
    for step in range(1, steps + 1):
        values = make_values(step)
        version = saver.get_next_version(version, None)
        versions = dict.fromkeys(values, version)
        ck = _checkpoint(values, versions, step)
        meta: Any = {"source": "loop", "step": step, "parents": {}}
        dt, config = await _timed(lambda: saver.aput(config, ck, meta, versions))  # noqa: B023
        case = record.get(step)
        if case is not None:
            case.put.append(dt)
            for _ in range(gets_per_step):
                dt, tup = await _timed(lambda: saver.aget_tuple(latest))
                assert tup is not None and tup.checkpoint["id"] == ck["id"]
                case.get.append(dt)
    if isinstance(saver, MeshCheckpointer):
        await saver.adelete_thread(tid)
    else:
        saver.delete_thread(tid)


def _messages(step: int) -> dict[str, Any]:
    msgs: list[Any] = []
    for i in range(step):
        cls = HumanMessage if i % 2 == 0 else AIMessage
        msgs.append(cls(content=f"message {i}: " + "lorem ipsum dolor sit amet " * 4, id=str(i)))
    return {"messages": msgs}


def _small(step: int) -> dict[str, Any]:
    return {"counter": step, "note": "hello"}


async def bench(saver: BaseCheckpointSaver[Any], threads: int, samples: int) -> dict[str, Case]:
    out: dict[str, Case] = {}
    small = Case()
    for _ in range(max(1, samples // 50)):
        await run_thread(saver, 50, _small, dict.fromkeys(range(1, 51), small), gets_per_step=1)
    out["small checkpoint"] = small
    depth = {1: Case(), 200: Case()}
    msgs = {1: Case(), 200: Case()}
    for _ in range(threads):
        await run_thread(saver, 200, _small, depth)
        await run_thread(saver, 200, _messages, msgs)
    out["small, history depth 1"] = depth[1]
    out["small, history depth 200"] = depth[200]
    out["messages, step 1"] = msgs[1]
    out["messages, step 200"] = msgs[200]
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=40, help="threads per growing case")
    parser.add_argument("--samples", type=int, default=2000, help="puts for the small case")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        server = redis_server(Path(tmp))
        server.start()
        client = aredis.Redis.from_url(server.url)
        try:
            mesh = MeshCheckpointer(client, prefix="bench")
            await mesh.asetup()
            memory = InMemorySaver()
            # Warm up both (script cache, imports, allocator).
            await bench(mesh, 2, 100)
            await bench(memory, 2, 100)
            results = {
                "mesh": await bench(mesh, args.threads, args.samples),
                "memory": await bench(memory, args.threads, args.samples),
            }
            info = await client.info("server")
        finally:
            await client.aclose()
            server.stop()

    version = info.get("valkey_version") or info.get("redis_version")
    print(f"MeshCheckpointer on Valkey {version} (loopback) vs InMemorySaver, async API")
    print(f"threads per growing case: {args.threads}, small-case puts: {args.samples}\n")
    for name in results["mesh"]:
        m, r = results["mesh"][name], results["memory"][name]
        for op in ("put", "get"):
            ms, rs = getattr(m, op), getattr(r, op)
            ratio = pct(ms, 0.5) / max(pct(rs, 0.5), 1e-9)
            label = "put       " if op == "put" else "get-latest"
            print(f"{name:28s} {label} n={len(ms):5d}")
            print(f"    mesh    {fmt(ms)}")
            print(f"    memory  {fmt(rs)}    mesh/memory p50 x{ratio:.1f}")
    for saver in ("mesh", "memory"):
        res = results[saver]
        for base, top in (
            ("small, history depth 1", "small, history depth 200"),
            ("messages, step 1", "messages, step 200"),
        ):
            g = pct(res[top].get, 0.5) / pct(res[base].get, 0.5)
            p = pct(res[top].put, 0.5) / pct(res[base].put, 0.5)
            print(f"{saver:6s} {top} / {base}: get-latest p50 x{g:.2f}, put p50 x{p:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
