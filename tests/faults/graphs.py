"""Deterministic graphs for fault tests: their final state does not depend on where or how
often a node ran, so a run through the mesh under faults must equal in-process LangGraph.

Every node records, when the run's configurable has ``count_key``, one Redis hash field
per execution start, ``<node>|<pid>|<n>`` -> wall time: how often each node started,
in which process and when (to show that no node started on an owner whose lease had
expired, and that committed steps did not run again).
"""

from __future__ import annotations

import asyncio
import operator
import os
import time
from typing import Annotated, Any

import redis.asyncio as aioredis
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict

_clients: dict[str, aioredis.Redis] = {}


async def record_start(config: RunnableConfig, node: str) -> None:
    key = (config.get("configurable") or {}).get("count_key")
    if not key:
        return
    url = os.environ.get("LGMESH_TEST_REDIS_URL") or os.environ["LGMESH_REDIS_URL"]
    client = _clients.get(url)
    if client is None:
        client = _clients[url] = aioredis.from_url(url)
    started = repr(time.time())
    # Instrumentation, not the graph's work: it rides out a Redis outage of the test.
    for _ in range(600):
        try:
            n = await client.incr(f"{key}:n")
            await client.hset(key, f"{node}|{os.getpid()}|{n}", started)
            return
        except (ConnectionError, OSError, aioredis.ConnectionError, aioredis.TimeoutError):
            await asyncio.sleep(0.1)


_ENTER = """
local n = redis.call('INCR', KEYS[1])
if n > tonumber(redis.call('GET', KEYS[2]) or '0') then redis.call('SET', KEYS[2], n) end
return n
"""


async def probed(config: RunnableConfig, body: Any) -> Any:
    """Run ``body()`` counted as "running" under ``probe_key`` (keeps the maximum of
    nodes running at once). Entering is one atomic script; leaving always happens, even
    when the node is cancelled (an interrupted run)."""
    key = (config.get("configurable") or {}).get("probe_key")
    if not key:
        return await body()
    url = os.environ.get("LGMESH_TEST_REDIS_URL") or os.environ["LGMESH_REDIS_URL"]
    client = _clients.get(url) or _clients.setdefault(url, aioredis.from_url(url))
    enter = asyncio.ensure_future(client.eval(_ENTER, 2, f"{key}:active", f"{key}:max"))
    try:
        await asyncio.shield(enter)
        return await body()
    finally:
        try:
            await asyncio.shield(enter)
        finally:
            await asyncio.shield(client.decr(f"{key}:active"))


def _conf(config: RunnableConfig, name: str, default: float) -> float:
    return float((config.get("configurable") or {}).get(name, default))


class ChainState(TypedDict, total=False):
    step: int
    trail: Annotated[list[int], operator.add]
    done: bool


def _chain() -> StateGraph:
    async def work(state: ChainState, config: RunnableConfig) -> dict[str, Any]:
        step = state.get("step", 0) + 1
        await record_start(config, f"work{step}")
        delay = _conf(config, "delay", 0)
        await probed(config, lambda: asyncio.sleep(delay))
        return {
            "step": step,
            "trail": [step * step],
            "done": step >= int(_conf(config, "steps", 5)),
        }

    def route(state: ChainState) -> str:
        return END if state.get("done") else "work"

    b = StateGraph(ChainState)
    b.add_node("work", work)
    b.add_edge(START, "work")
    b.add_conditional_edges("work", route, ["work", END])
    return b


chain = _chain().compile()


class FanState(TypedDict, total=False):
    n: int
    results: Annotated[list[int], operator.add]
    total: int


def _fan() -> StateGraph:
    def spread(state: FanState) -> list[Send]:
        return [Send("job", {"i": i}) for i in range(state.get("n", 8))]

    async def job(task: dict[str, int], config: RunnableConfig) -> dict[str, Any]:
        await record_start(config, f"job{task['i']}")
        delay = _conf(config, "delay", 0)
        if delay:
            await asyncio.sleep(delay)
        return {"results": [task["i"] * task["i"]]}

    def reduce(state: FanState) -> dict[str, Any]:
        return {"total": sum(state.get("results", [])), "results": []}

    b = StateGraph(FanState)
    b.add_node("job", job)
    b.add_node("reduce", reduce)
    b.add_conditional_edges(START, spread, ["job"])
    b.add_edge("job", "reduce")
    b.add_edge("reduce", END)
    return b


fan = _fan().compile()


async def expected_state(graph: Any, payload: Any, config: dict[str, Any]) -> Any:
    """The final state in-process LangGraph gives (no counting, no delay)."""
    conf = {k: v for k, v in (config.get("configurable") or {}).items() if k not in ("count_key",)}
    conf["delay"] = 0
    return await graph.ainvoke(payload, {"configurable": conf})


class BlobState(TypedDict, total=False):
    blob: str
    size: int
    rounds: int


def _blob() -> StateGraph:
    """Carries a large input in its state through a few steps (heavy checkpoints)."""

    def measure(state: BlobState) -> dict[str, Any]:
        return {"size": len(state.get("blob", "")), "rounds": state.get("rounds", 0) + 1}

    def route(state: BlobState) -> str:
        return END if state.get("rounds", 0) >= 3 else "measure"

    b = StateGraph(BlobState)
    b.add_node("measure", measure)
    b.add_edge(START, "measure")
    b.add_conditional_edges("measure", route, ["measure", END])
    return b


blob = _blob().compile()
