"""A superstep's last writes ride along with its checkpoint: one round trip per
single-task step, while a finished task's writes are saved at once when siblings run on."""

from __future__ import annotations

import asyncio
import operator
import uuid
from typing import Annotated, Any

import pytest
import redis.asyncio as aredis
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.localservers import LocalServers
from tests.helpers import assert_eventually

pytestmark = pytest.mark.integration


class S(TypedDict, total=False):
    n: int
    log: Annotated[list[str], operator.add]


def _chain(steps: int) -> StateGraph:
    b = StateGraph(S)
    prev = START
    for i in range(steps):

        async def node(state: S) -> dict[str, Any]:
            return {"n": state.get("n", 0) + 1}

        b.add_node(f"n{i}", node)
        b.add_edge(prev, f"n{i}")
        prev = f"n{i}"
    return b


async def _client_commands(infra: LocalServers, tid: str, run: Any) -> list[str]:
    """The commands clients (not scripts) send about ``tid`` while ``run()`` runs."""
    monitor = aredis.Redis.from_url(infra.redis_url)
    sentinel = f"done-{uuid.uuid4().hex}"
    seen: list[str] = []
    try:
        async with monitor.monitor() as mon:
            await run()
            await monitor.echo(sentinel)
            while True:
                info = await asyncio.wait_for(mon.next_command(), 10)
                if sentinel in info["command"]:
                    break
                if tid in info["command"] and info["client_type"] != "lua":
                    seen.append(info["command"].split(" ")[0].upper())
    finally:
        await monitor.aclose()
    return seen


async def test_one_round_trip_per_single_task_step(infra: LocalServers, prefix: str) -> None:
    redis = aredis.Redis.from_url(infra.redis_url)
    saver = MeshCheckpointer(redis, prefix=prefix)
    await saver.asetup()
    graph = _chain(5).compile(checkpointer=saver)
    tid = f"steps-{uuid.uuid4().hex}"
    try:

        async def run() -> None:
            out = await graph.ainvoke(
                {"n": 0}, {"configurable": {"thread_id": tid}}, durability="sync"
            )
            assert out["n"] == 5

        seen = await _client_commands(infra, tid, run)
        # the first read, the input and step-0 checkpoints, the input's writes (LangGraph
        # submits them after the step-0 checkpoint is on its way), then ONE call per step
        # (its task's writes ride along with its checkpoint): 4 + 5, not 4 + 2 * 5
        evals = [c for c in seen if c.startswith("EVAL")]
        assert len(evals) == 4 + 5, seen
        # nothing lost: the writes of every step are where LangGraph left them
        history = [t async for t in saver.alist({"configurable": {"thread_id": tid}})]
        assert len(history) == 7
        assert history[0].checkpoint["channel_values"]["n"] == 5
    finally:
        await redis.aclose()


async def test_a_finished_tasks_writes_are_saved_while_siblings_still_run(
    infra: LocalServers, prefix: str
) -> None:
    redis = aredis.Redis.from_url(infra.redis_url)
    saver = MeshCheckpointer(redis, prefix=prefix)
    release = asyncio.Event()

    async def fast(state: S) -> dict[str, Any]:
        return {"log": ["fast"]}

    async def slow(state: S) -> dict[str, Any]:
        await release.wait()
        return {"log": ["slow"]}

    b = StateGraph(S)
    b.add_node("fast", fast)
    b.add_node("slow", slow)
    b.add_edge(START, "fast")
    b.add_edge(START, "slow")
    graph = b.compile(checkpointer=saver)
    tid = f"par-{uuid.uuid4().hex}"
    cfg: Any = {"configurable": {"thread_id": tid}}
    try:
        run = asyncio.create_task(graph.ainvoke({"n": 0}, cfg, durability="sync"))

        async def fast_saved() -> bool:
            tup = await saver.aget_tuple(cfg)
            return tup is not None and any(w[1] == "log" for w in tup.pending_writes or [])

        # the fast task's writes are durable before the step ends (slow is still held)
        await assert_eventually(
            fast_saved, interval=0.01, message="the finished task's writes were held back"
        )
        assert not run.done()
        release.set()
        out = await run
        assert sorted(out["log"]) == ["fast", "slow"]
    finally:
        await redis.aclose()
