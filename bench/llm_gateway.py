#!/usr/bin/env python
"""LLM gateway overhead and throughput against a local OpenAI-compatible server.

    python bench/llm_gateway.py [--requests 1000] [--seconds 5] [--concurrency 16]

Starts a Valkey server, the OpenAI stub (``tests.support.openai_stub``) and
gateway replicas as processes, then prints:

- latency of a direct HTTP call to the stub (the baseline) and of the same call
  through the gateway, sequential, p50/p99; the gateway's added latency = difference;
- requests/s through 1 and 2 replicas under concurrent load (via the stub, and via
  the scripted provider, which has no upstream, to show the gateway's own ceiling).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import grpc
import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lgmesh.llm.v1 import llm_pb2, llm_pb2_grpc  # noqa: E402

from mesh_core.localservers import redis_server  # noqa: E402
from tests.support.llm_processes import (  # noqa: E402
    ServiceProcess,
    start_gateway,
    start_openai_stub,
)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


def fmt(xs: list[float]) -> str:
    return f"p50 {pct(xs, 50) * 1e3:7.3f} ms  p99 {pct(xs, 99) * 1e3:7.3f} ms  mean {statistics.fmean(xs) * 1e3:7.3f} ms"


def direct_latencies(stub: ServiceProcess, n: int) -> list[float]:
    body = {"model": "bench", "messages": [{"role": "user", "content": "hello bench"}]}
    out = []
    with httpx.Client(base_url=stub.base_url) as client:
        for i in range(n + 50):
            t = time.perf_counter()
            r = client.post("/chat/completions", json=body)
            r.raise_for_status()
            if i >= 50:
                out.append(time.perf_counter() - t)
    return out


def gateway_latencies(address: str, n: int, model: str) -> list[float]:
    req = llm_pb2.GenerateRequest(
        model=model, messages=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="hello bench")]
    )
    out = []
    with grpc.insecure_channel(address) as ch:
        stub = llm_pb2_grpc.LlmServiceStub(ch)
        for i in range(n + 50):
            t = time.perf_counter()
            stub.Generate(req, timeout=10)
            if i >= 50:
                out.append(time.perf_counter() - t)
    return out


async def _load(
    addresses: list[str], model: str, seconds: float, concurrency: int
) -> tuple[int, float]:
    channels = [grpc.aio.insecure_channel(a) for a in addresses]
    stubs = [llm_pb2_grpc.LlmServiceStub(c) for c in channels]
    req = llm_pb2.GenerateRequest(
        model=model, messages=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content="hello bench")]
    )
    done = 0
    for s in stubs:  # warm up
        await s.Generate(req, timeout=10)
    stop_at = time.perf_counter() + seconds

    async def worker(i: int) -> None:
        nonlocal done
        stub = stubs[i % len(stubs)]
        while time.perf_counter() < stop_at:
            await stub.Generate(req, timeout=10)
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - t0
    for c in channels:
        await c.close()
    return done, elapsed


def _load_process(args: tuple[list[str], str, float, int]) -> tuple[int, float]:
    return asyncio.run(_load(*args))


def throughput(
    addresses: list[str], model: str, seconds: float, concurrency: int, procs: int
) -> float:
    """Requests/s from ``procs`` client processes (one Python client saturates early)."""
    with multiprocessing.get_context("spawn").Pool(procs) as pool:
        runs = pool.map(_load_process, [(addresses, model, seconds, concurrency // procs)] * procs)
    return sum(done / elapsed for done, elapsed in runs)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--client-procs", type=int, default=2)
    ns = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="lgmesh-bench-"))
    redis = redis_server(base)
    redis.start()
    stub = start_openai_stub()
    cfg = base / "gateway.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "providers": {
                    "stub": {"type": "openai", "base_url": stub.base_url},
                    "scripted": {"type": "scripted", "rules": [{"reply": "hello from the script"}]},
                },
                "routes": {"bench": ["stub/bench"], "scripted": ["scripted/bench"]},
            }
        )
    )
    replicas = [start_gateway(cfg, redis_url=redis.url, prefix="bench") for _ in range(2)]
    try:
        n = ns.requests
        direct = direct_latencies(stub, n)
        via = gateway_latencies(replicas[0].address, n, "bench")
        scripted = gateway_latencies(replicas[0].address, n, "scripted")
        print(f"sequential unary calls, n={n}")
        print(f"  direct HTTP to stub      {fmt(direct)}")
        print(f"  via gateway -> stub      {fmt(via)}")
        print(f"  via gateway (scripted)   {fmt(scripted)}")
        print(
            f"  gateway added latency    p50 {(pct(via, 50) - pct(direct, 50)) * 1e3:.3f} ms"
            f"  p99 {(pct(via, 99) - pct(direct, 99)) * 1e3:.3f} ms"
            f"  (ratio via/direct p50 {pct(via, 50) / pct(direct, 50):.2f}x)"
        )
        added = (pct(via, 50) - pct(direct, 50)) * 1e3
        print(f"  target added p50 <= 1 ms: {'met' if added <= 1.0 else 'NOT met'}")
        print(
            f"throughput, {ns.concurrency} concurrent calls from {ns.client_procs} client processes,"
            f" {ns.seconds:.0f} s each, {os.cpu_count()} CPUs shared by everything"
        )
        for model, label in (("bench", "-> stub"), ("scripted", "scripted")):
            args = (model, ns.seconds, ns.concurrency, ns.client_procs)
            one = throughput([replicas[0].address], *args)
            two = throughput([r.address for r in replicas], *args)
            print(
                f"  {label:9s} 1 replica {one:8.0f} req/s   2 replicas {two:8.0f} req/s   ratio {two / one:.2f}x"
            )
    finally:
        for r in replicas:
            r.terminate()
        stub.terminate()
        redis.stop()


if __name__ == "__main__":
    main()
