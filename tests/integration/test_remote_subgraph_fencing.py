"""Subgraph checkpoints a worker writes for a remote task are fenced like the owner's.

The owner puts the thread's fencing token in ``config["configurable"]``; the worker
rebuilds the task with that configurable, so a subgraph running inside the task writes
its checkpoints with the token. Once a newer owner bumped the fence, the worker's
writes are rejected (real Redis; the task queue is the in-process loopback).
"""

from __future__ import annotations

import asyncio
import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.config import InfraSettings
from mesh_core.errors import StaleOwnerError
from tests.integration.test_remote_support import redis_client
from tests.unit.test_remote_executor import LoopbackExecutor

pytestmark = [pytest.mark.integration]

GATES: dict[str, asyncio.Event] = {}
ENTERED: dict[str, asyncio.Event] = {}


def _last(_a: str, b: str) -> str:
    return b


class Hq(TypedDict, total=False):
    gate: Annotated[str, _last]  # both jobs return it
    out: Annotated[list[str], operator.add]


class Job(TypedDict, total=False):
    gate: Annotated[str, _last]
    i: int
    out: Annotated[list[str], operator.add]


def _graph() -> Any:
    async def slow(state: Job) -> dict[str, Any]:
        ENTERED[state["gate"]].set()
        await GATES[state["gate"]].wait()
        return {"out": [f"job{state['i']}"]}

    sub = StateGraph(Job)
    sub.add_node("slow", slow)
    sub.add_edge(START, "slow")

    def fan(state: Hq) -> list[Send]:
        return [Send("job", {"gate": state["gate"], "i": i}) for i in range(2)]

    b = StateGraph(Hq)
    b.add_node("job", sub.compile())
    b.add_conditional_edges(START, fan, ["job"])
    b.add_edge("job", END)
    return b.compile()


async def test_a_workers_subgraph_checkpoints_are_rejected_after_the_fence_moves(
    infra_settings: InfraSettings,
) -> None:
    client = redis_client(infra_settings)
    cp = MeshCheckpointer(client, prefix=infra_settings.prefix)
    graph = _graph().copy(update={"checkpointer": cp})
    ex = LoopbackExecutor(graph, cp)
    thread, gate = f"t-{uuid.uuid4().hex}", uuid.uuid4().hex
    GATES[gate], ENTERED[gate] = asyncio.Event(), asyncio.Event()
    token = 7
    await cp.abump_fence(thread, token)
    cfg0 = {"configurable": {"thread_id": thread, "fencing_token": token}}
    try:
        async with ex.run(cfg0, graph_id="g") as cfg:
            run = asyncio.ensure_future(
                graph.ainvoke({"gate": gate}, cfg, durability="sync", stream_mode="values")
            )
            await asyncio.wait_for(ENTERED[gate].wait(), 10)
            assert len(ex.published) == 2  # the subgraph runs inside the remote tasks
            await cp.abump_fence(thread, token + 1)  # a new owner took the thread
            GATES[gate].set()
            with pytest.raises(StaleOwnerError) as info:
                await asyncio.wait_for(run, 10)
        # raised by the worker's subgraph checkpoint write, rebuilt on the owner
        assert any("remote worker" in n for n in getattr(info.value, "__notes__", []))
    finally:
        GATES.pop(gate, None)
        ENTERED.pop(gate, None)
        await client.aclose()
