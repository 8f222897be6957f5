#!/usr/bin/env python
"""LLM gateway overhead and throughput against a local OpenAI-compatible server.

    python bench/llm_gateway.py [--requests 500] [--rounds 3] [--seconds 5]
                                [--concurrency 16] [--compare-layers]

Starts a Valkey server, the OpenAI stub (``tests.support.openai_stub``) and gateway
replicas as processes; the gateway's provider is ``type: openai``, i.e. LangChain's
``ChatOpenAI`` (the provider layer). Then, in ``--rounds`` rounds, sequential calls that
take turns call by call (each path's n-th call right after the others' n-th):

- direct: ``ChatOpenAI.invoke`` from this process to the stub (the baseline: the
  call the gateway replaces, same provider layer, same server);
- via the gateway: ``MeshChatModel.invoke`` -> gRPC -> gateway -> ``ChatOpenAI`` -> stub;
- for reference: raw HTTP to the stub, a raw gRPC client through the gateway, and the
  scripted provider (no upstream) through the gateway.

Each figure is the median of the rounds' p50 (and the min); the gateway's added
latency is via - direct, with the ratio via/direct, all from the same run.
Throughput through 1 and 2 replicas under concurrent load follows.

``--compare-layers`` also times the candidate provider layers in-process against
the same stub (raw httpx, the openai SDK, ChatOpenAI's hooks and Runnable API,
``litellm.acompletion``), generate and stream: the measurement behind choosing
LangChain's integrations (see llm_gateway_svc/providers/langchain.py).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import httpx
import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from langchain_core.messages import HumanMessage  # noqa: E402
from lgmesh.llm.v1 import llm_pb2, llm_pb2_grpc  # noqa: E402

from mesh_client.llm import MeshChatModel  # noqa: E402
from mesh_core.localservers import redis_server  # noqa: E402
from tests.support.llm_processes import (  # noqa: E402
    LlmProcess,
    start_gateway,
    start_openai_stub,
)

WARMUP = 50
PROMPT = "hello bench"


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))]


class _AsyncRunner:
    """Runs coroutines to completion on one long-lived event loop (async callers' paths)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __call__(self, make: Callable[[], Awaitable[Any]]) -> Callable[[], Any]:
        return lambda: self.loop.run_until_complete(make())


def sequential_paths(
    stub: LlmProcess, gateway: str, run: _AsyncRunner
) -> dict[str, Callable[[], Any]]:
    from langchain_openai import ChatOpenAI

    body = {"model": "bench", "messages": [{"role": "user", "content": PROMPT}]}
    http = httpx.Client(base_url=stub.base_url)
    direct = ChatOpenAI(base_url=stub.base_url, api_key="no-key", model="bench", max_retries=0)
    mesh = MeshChatModel(target=gateway, model="bench", idempotency=False)
    channel = grpc.insecure_channel(gateway)
    rpc = llm_pb2_grpc.LlmServiceStub(channel)
    req = llm_pb2.GenerateRequest(
        model="bench", messages=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=PROMPT)]
    )
    scripted = llm_pb2.GenerateRequest(model="scripted", messages=req.messages)
    msgs = [HumanMessage(PROMPT)]

    def raw_http() -> None:
        http.post("/chat/completions", json=body).raise_for_status()

    return {
        # Async first: LangGraph runs graphs (and their model calls) this way in the mesh.
        "direct: await ChatOpenAI.ainvoke -> stub": run(lambda: direct.ainvoke(msgs)),
        "via: await MeshChatModel.ainvoke -> gw": run(lambda: mesh.ainvoke(msgs)),
        "direct: ChatOpenAI.invoke -> stub": lambda: direct.invoke(msgs),
        "via: MeshChatModel.invoke -> gw": lambda: mesh.invoke(msgs),
        "ref: raw HTTP -> stub": raw_http,
        "ref: raw gRPC -> gateway -> stub": lambda: rpc.Generate(req, timeout=10),
        "ref: raw gRPC -> gateway (scripted)": lambda: rpc.Generate(scripted, timeout=10),
    }


def report_sequential(paths: dict[str, Callable[[], Any]], n: int, rounds: int) -> None:
    p50s: dict[str, list[float]] = {k: [] for k in paths}
    p99s: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for fn in paths.values():
            for _ in range(WARMUP):
                fn()
        # Call by call in turn: the direct call and the call through the gateway that is
        # compared with it run back to back, so both see the same moment of the machine
        # (a shared, noisy one) instead of one block of n calls each.
        xs: dict[str, list[float]] = {k: [] for k in paths}
        for _ in range(n):
            for name, fn in paths.items():
                t = time.perf_counter()
                fn()
                xs[name].append(time.perf_counter() - t)
        for name in paths:
            p50s[name].append(pct(xs[name], 50) * 1e3)
            p99s[name].append(pct(xs[name], 99) * 1e3)
    print(f"sequential unary calls, n={n} per round, {rounds} rounds (ms: median [min] of rounds)")
    for name in paths:
        print(
            f"  {name:42s} p50 {statistics.median(p50s[name]):7.3f} [{min(p50s[name]):7.3f}]"
            f"   p99 {statistics.median(p99s[name]):7.3f} [{min(p99s[name]):7.3f}]"
        )
    names = list(paths)
    for label, (d, v) in (("async", names[0:2]), ("sync", names[2:4])):
        added = [b - a for a, b in zip(p50s[d], p50s[v], strict=True)]
        ratio = statistics.median(p50s[v]) / statistics.median(p50s[d])
        med = statistics.median(added)
        verdict = "met" if med <= 1.0 else "NOT met"
        print(
            f"  {label:5s} gateway added p50 over the direct call: median {med:.3f} ms"
            f" (rounds {', '.join(f'{a:.3f}' for a in added)}), ratio {ratio:.2f}x;"
            f" target <= 1 ms {verdict}"
        )


# -- throughput ----------------------------------------------------------------------------


async def _load(
    addresses: list[str], model: str, seconds: float, concurrency: int
) -> tuple[int, float]:
    channels = [grpc.aio.insecure_channel(a) for a in addresses]
    stubs = [llm_pb2_grpc.LlmServiceStub(c) for c in channels]
    req = llm_pb2.GenerateRequest(
        model=model, messages=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=PROMPT)]
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


# -- provider layers -------------------------------------------------------------------------


async def compare_layers(stub: LlmProcess, n: int, rounds: int) -> None:
    import json

    import openai
    from langchain_openai import ChatOpenAI

    base = stub.base_url
    messages = [{"role": "user", "content": PROMPT}]
    body = json.dumps({"model": "bench", "messages": messages}).encode()
    transport = httpx.AsyncHTTPTransport()
    sdk = openai.AsyncOpenAI(base_url=base, api_key="no-key", max_retries=0)
    chat = ChatOpenAI(
        base_url=base, api_key="no-key", model="bench", max_retries=0, stream_usage=True
    )
    lc_msgs = [HumanMessage(PROMPT)]

    async def raw() -> None:
        request = httpx.Request(
            "POST",
            base + "/chat/completions",
            content=body,
            headers={"content-type": "application/json"},
        )
        resp = await transport.handle_async_request(request)
        await resp.aread()
        await resp.aclose()
        json.loads(resp.content)

    async def drain(it: Any) -> None:
        async for _ in it:
            pass

    async def sdk_stream() -> None:
        await drain(
            await sdk.chat.completions.create(model="bench", messages=messages, stream=True)
        )  # type: ignore[arg-type]

    layers: dict[str, Callable[[], Awaitable[Any]]] = {
        "raw httpx (baseline)": raw,
        "openai SDK": lambda: sdk.chat.completions.create(model="bench", messages=messages),  # type: ignore[arg-type]
        "openai SDK, stream": sdk_stream,
        "ChatOpenAI hooks (_agenerate; the gateway)": lambda: chat._agenerate(lc_msgs),
        "ChatOpenAI hooks (_astream; the gateway)": lambda: drain(chat._astream(lc_msgs)),
        "ChatOpenAI.ainvoke": lambda: chat.ainvoke(lc_msgs),
        "ChatOpenAI.astream": lambda: drain(chat.astream(lc_msgs)),
    }
    try:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.telemetry = False

        async def ll_stream() -> None:
            await drain(
                await litellm.acompletion(
                    model="openai/bench",
                    api_base=base,
                    api_key="no-key",
                    messages=messages,
                    stream=True,
                    num_retries=0,
                )
            )

        layers["litellm.acompletion"] = lambda: litellm.acompletion(
            model="openai/bench", api_base=base, api_key="no-key", messages=messages, num_retries=0
        )
        layers["litellm.acompletion, stream"] = ll_stream
    except ImportError:
        print("  (litellm not installed: its rows are left out)")
    p50s: dict[str, list[float]] = {k: [] for k in layers}
    for _ in range(rounds):
        for name, fn in layers.items():
            for _ in range(WARMUP):
                await fn()
            xs = []
            for _ in range(n):
                t = time.perf_counter()
                await fn()
                xs.append(time.perf_counter() - t)
            p50s[name].append(pct(xs, 50) * 1e3)
    base_p50 = statistics.median(p50s["raw httpx (baseline)"])
    print(f"provider layers in-process, n={n} per round, {rounds} rounds (p50 ms: median [min])")
    for name, xs in p50s.items():
        med = statistics.median(xs)
        print(
            f"  {name:44s} {med:7.3f} [{min(xs):7.3f}]  +{med - base_p50:6.3f} over raw, {med / base_p50:5.2f}x"
        )
    await transport.aclose()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=5.0)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--client-procs", type=int, default=2)
    p.add_argument("--compare-layers", action="store_true")
    p.add_argument("--no-throughput", action="store_true")
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
        runner = _AsyncRunner()
        report_sequential(
            sequential_paths(stub, replicas[0].address, runner), ns.requests, ns.rounds
        )
        if ns.compare_layers:
            asyncio.run(compare_layers(stub, ns.requests, ns.rounds))
        if ns.no_throughput:
            return
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
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
