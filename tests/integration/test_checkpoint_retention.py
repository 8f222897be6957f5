"""Checkpoint retention: keep the newest K checkpoints of each namespace of a thread."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any

import pytest
import redis.asyncio as aredis
from langgraph.graph import START, StateGraph
from typing_extensions import TypedDict

from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.errors import StaleOwnerError
from mesh_core.localservers import LocalServers

pytestmark = pytest.mark.integration


class Chat(TypedDict, total=False):
    turns: Annotated[list[str], operator.add]
    n: int


def _graph(saver: MeshCheckpointer) -> Any:
    def talk(state: Chat) -> dict[str, Any]:
        return {"n": state.get("n", 0) + 1}

    b = StateGraph(Chat)
    b.add_node("talk", talk)
    b.add_edge(START, "talk")
    return b.compile(checkpointer=saver)


async def test_keep_last_drops_old_checkpoints_and_their_blobs(
    infra: LocalServers, prefix: str
) -> None:
    redis = aredis.Redis.from_url(infra.redis_url)
    saver = MeshCheckpointer(redis, prefix=prefix)
    graph = _graph(saver)
    tid = f"chat-{uuid.uuid4().hex}"
    cfg: Any = {"configurable": {"thread_id": tid}}
    try:
        for i in range(20):  # 3 checkpoints per run: 60 in all
            await graph.ainvoke({"turns": [f"t{i}" * 50]}, cfg, durability="sync")
        blobs_key = saver.keys.checkpoint_keys(tid).blobs
        before = await redis.hlen(blobs_key)
        await saver.abump_fence(tid, 5)
        with pytest.raises(StaleOwnerError):
            await saver.aprune_keep_last(tid, 10, token=4)  # a stale owner prunes nothing
        dropped = await saver.aprune_keep_last(tid, 10, token=5)
        assert dropped == 50
        history = [t async for t in saver.alist(cfg)]
        assert len(history) == 10
        latest = await graph.aget_state(cfg)
        assert latest.values["n"] == 20
        assert latest.values["turns"] == [f"t{i}" * 50 for i in range(20)]
        for tup in history:  # every kept checkpoint still reads whole
            state = await graph.aget_state(tup.config)
            # a run's input is applied one step before its node counts it
            assert len(state.values["turns"]) - state.values.get("n", 0) in (0, 1)
        assert await redis.hlen(blobs_key) < before  # blobs only the dropped ones used went
        assert await saver.aprune_keep_last(tid, 10, token=5) == 0
        # the thread goes on as before
        out = await graph.ainvoke({"turns": ["again"]}, cfg, durability="sync")
        assert out["n"] == 21 and out["turns"][-1] == "again"
    finally:
        await redis.aclose()
