"""Real LangGraph graphs on MeshCheckpointer: interrupt/resume, and the fencing token's path.

These also pin what the fence relies on in langgraph 1.2.22: the caller's
``configurable`` keys reach every ``put``/``put_writes``, for the root graph, for
subgraphs (their own ``checkpoint_ns``) and for parallel ``Send`` tasks.
"""

from __future__ import annotations

import operator
from collections.abc import AsyncIterator, Sequence
from typing import Annotated, Any, TypedDict

import pytest
import redis.asyncio as aredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from mesh_core.adapters.redis import MeshCheckpointer
from mesh_core.errors import StaleOwnerError
from mesh_core.localservers import LocalServers

pytestmark = pytest.mark.integration


class State(TypedDict, total=False):
    steps: Annotated[list[str], operator.add]
    answer: str


def _builder(runs: dict[str, int]) -> StateGraph[State]:
    def a(state: State) -> dict[str, Any]:
        runs["a"] = runs.get("a", 0) + 1
        return {"steps": ["a"]}

    def ask(state: State) -> dict[str, Any]:
        answer = interrupt("what is the answer?")
        return {"steps": ["ask"], "answer": answer}

    def c(state: State) -> dict[str, Any]:
        return {"steps": ["c"]}

    b = StateGraph(State)
    b.add_node("a", a)
    b.add_node("ask", ask)
    b.add_node("c", c)
    b.add_edge(START, "a")
    b.add_edge("a", "ask")
    b.add_edge("ask", "c")
    b.add_edge("c", END)
    return b


@pytest.fixture
async def clients(infra: LocalServers) -> AsyncIterator[list[aredis.Redis]]:
    made = [aredis.Redis.from_url(infra.redis_url) for _ in range(2)]
    try:
        yield made
    finally:
        for c in made:
            await c.aclose()


async def test_graph_resumes_after_interrupt_on_another_saver(
    clients: list[aredis.Redis], prefix: str
) -> None:
    runs: dict[str, int] = {}
    cfg: RunnableConfig = {"configurable": {"thread_id": "g1", "fencing_token": 1}}
    first = _builder(runs).compile(checkpointer=MeshCheckpointer(clients[0], prefix=prefix))
    out = await first.ainvoke({"steps": []}, cfg, durability="sync")
    assert "__interrupt__" in out and out["steps"] == ["a"]

    # Another process (new client, new saver, new owner with a higher token) resumes.
    second_saver = MeshCheckpointer(clients[1], prefix=prefix)
    await second_saver.abump_fence("g1", 2)
    second = _builder(runs).compile(checkpointer=second_saver)
    cfg2: RunnableConfig = {"configurable": {"thread_id": "g1", "fencing_token": 2}}
    snapshot = await second.aget_state(cfg2)
    assert snapshot.next == ("ask",)
    out2 = await second.ainvoke(Command(resume="42"), cfg2, durability="sync")
    assert out2 == {"steps": ["a", "ask", "c"], "answer": "42"}
    assert runs["a"] == 1  # finished work is not redone
    history = [s async for s in second.aget_state_history(cfg2)]
    assert len(history) >= 5
    assert [s.metadata["step"] for s in history] == sorted(
        (s.metadata["step"] for s in history), reverse=True
    )

    # The old owner (token 1) can no longer commit to the thread.
    with pytest.raises(StaleOwnerError):
        await first.ainvoke({"steps": ["late"]}, cfg, durability="sync")
    final = await second.aget_state(cfg2)
    assert final.values["steps"] == ["a", "ask", "c"]


def test_sync_graph_resumes_with_conn_string_saver(infra: LocalServers, prefix: str) -> None:
    runs: dict[str, int] = {}
    cfg: RunnableConfig = {"configurable": {"thread_id": "g-sync", "fencing_token": 3}}
    with MeshCheckpointer.from_conn_string(infra.redis_url, prefix=prefix) as saver:
        graph = _builder(runs).compile(checkpointer=saver)
        out = graph.invoke({"steps": []}, cfg, durability="sync")
        assert "__interrupt__" in out
    with MeshCheckpointer.from_conn_string(infra.redis_url, prefix=prefix) as saver:
        graph = _builder(runs).compile(checkpointer=saver)
        out = graph.invoke(Command(resume="yes"), cfg, durability="sync")
        assert out == {"steps": ["a", "ask", "c"], "answer": "yes"}
    assert runs["a"] == 1


class _Spy(MeshCheckpointer):
    """Records the namespace and fencing token of every write LangGraph makes."""

    seen: list[tuple[str, str, Any]]

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        conf = config["configurable"]
        self.seen.append(("put", conf.get("checkpoint_ns", ""), conf.get("fencing_token")))
        return await super().aput(config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        conf = config["configurable"]
        self.seen.append(("writes", conf.get("checkpoint_ns", ""), conf.get("fencing_token")))
        await super().aput_writes(config, writes, task_id, task_path)


async def test_fencing_token_reaches_subgraph_and_send_writes(
    clients: list[aredis.Redis], prefix: str
) -> None:
    class Sub(TypedDict, total=False):
        steps: Annotated[list[str], operator.add]

    def sub_step(state: Sub) -> dict[str, Any]:
        ok = interrupt("confirm?")
        return {"steps": [f"sub:{ok}"]}

    sub_builder = StateGraph(Sub)
    sub_builder.add_node("sub_step", sub_step)
    sub_builder.add_edge(START, "sub_step")
    subgraph = sub_builder.compile()

    def fan_out(state: State) -> list[Send]:
        return [Send("work", {"steps": [str(i)]}) for i in range(3)]

    def work(state: State) -> dict[str, Any]:
        return {"steps": ["w"]}

    b = StateGraph(State)
    b.add_node("work", work)
    b.add_node("sub", subgraph)
    b.add_conditional_edges(START, fan_out, ["work"])
    b.add_edge("work", "sub")
    b.add_edge("sub", END)

    spy = _Spy(clients[0], prefix=prefix)
    spy.seen = []
    cfg: RunnableConfig = {"configurable": {"thread_id": "g-sub", "fencing_token": 11}}
    outs = []
    for saver in (spy, InMemorySaver()):
        graph = b.compile(checkpointer=saver)
        out = await graph.ainvoke({"steps": []}, cfg, durability="sync")
        assert "__interrupt__" in out
        outs.append(await graph.ainvoke(Command(resume="ok"), cfg, durability="sync"))
    assert outs[0] == outs[1]  # same result as LangGraph's own saver
    assert "sub:ok" in outs[0]["steps"]

    kinds = {(kind, ns != "") for kind, ns, _ in spy.seen}
    assert kinds == {("put", False), ("put", True), ("writes", False), ("writes", True)}
    assert [s for s in spy.seen if s[2] != 11] == []
    assert await spy.aget_fence("g-sub") == 11
