"""mesh_client.tools: idempotency keys from the LangGraph task id (a contract with
langgraph 1.2.22), and RemoteTool's error mapping against an in-process tool_svc."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import grpc
import pytest
from langchain_core.messages import AIMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from mesh_client.tools import (
    RemoteTool,
    ToolInfrastructureError,
    aremote_tools,
    current_task_id,
    idempotency_key_for,
)
from mesh_core.config import InfraSettings
from tests.helpers import find_free_port
from tool_svc import ToolServer, ToolServiceSettings, ToolSpec


class _State(TypedDict):
    seen: list[str]


def test_task_id_inside_a_node_is_langgraphs_task_id() -> None:
    """LangGraph exposes the running task's id as Runtime.execution_info.task_id."""

    def node(state: _State) -> dict[str, Any]:
        return {"seen": [current_task_id() or "", idempotency_key_for("call-1")]}

    graph = StateGraph(_State).add_node("node", node).add_edge(START, "node")
    app = graph.compile(checkpointer=InMemorySaver())
    config: Any = {"configurable": {"thread_id": "t1"}}
    task_ids = [
        ev["id"]
        for mode, ev in app.stream({"seen": []}, config, stream_mode=["tasks", "values"])
        if mode == "tasks" and "input" in ev
    ]
    seen = app.get_state(config).values["seen"]
    assert len(task_ids) == 1 and seen == [task_ids[0], f"{task_ids[0]}:call-1"]
    assert current_task_id() is None
    assert idempotency_key_for("call-1") == ""


@pytest.fixture
async def server_without_redis() -> Any:
    """A real in-process tool_svc whose Redis is down (keyed calls fail: UNAVAILABLE)."""
    infra = InfraSettings(redis_url=f"redis://127.0.0.1:{find_free_port()}/0", prefix="unit")
    settings = ToolServiceSettings(
        infra=infra, tools=(ToolSpec("mesh_demo.tools:TOOLS"),), port=0, drain_grace=1
    )
    async with ToolServer(settings) as server:
        yield server


async def test_remote_tools_in_a_tool_node(server_without_redis: ToolServer) -> None:
    tools = await aremote_tools(
        f"127.0.0.1:{server_without_redis.port}", names=["search", "divide"]
    )
    assert [t.name for t in tools] == ["search", "divide"]
    assert all(isinstance(t, RemoteTool) for t in tools)
    assert tools[0].args["query"]["type"] == "string"
    call = {"name": "search", "args": {"query": "grpc"}, "id": "c1"}
    graph = StateGraph(MessagesState).add_node("tools", ToolNode(tools)).add_edge(START, "tools")
    app = graph.compile()
    # Outside a graph there is no task id: no idempotency key, Redis is not needed.
    direct = await tools[0].ainvoke({"type": "tool_call", **call})
    assert isinstance(direct, ToolMessage) and direct.status == "success"
    assert direct.content.startswith("1. ")
    # Inside a graph the call is keyed and needs Redis, which is down: retryable infra error.
    with pytest.raises(ToolInfrastructureError) as info:
        await app.ainvoke({"messages": [AIMessage("", tool_calls=[call])]})
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert info.value.reason == "IDEMPOTENCY_STORE_UNAVAILABLE"
    assert isinstance(info.value, ConnectionError)  # LangGraph's default retry_on retries it


async def test_tool_errors_and_bad_arguments_reach_the_agent(
    server_without_redis: ToolServer,
) -> None:
    tools = await aremote_tools(
        f"127.0.0.1:{server_without_redis.port}", names=["divide"], idempotency=False
    )
    app = (
        StateGraph(MessagesState).add_node("tools", ToolNode(tools)).add_edge(START, "tools")
    ).compile()
    calls = [
        {"name": "divide", "args": {"a": 1, "b": 0}, "id": "c2"},
        {"name": "divide", "args": {"a": "x"}, "id": "c3"},
        {"name": "divide", "args": {"a": 6, "b": 3}, "id": "c4"},
    ]
    out = await app.ainvoke({"messages": [AIMessage("", tool_calls=calls)]})
    by_id = {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}
    assert by_id["c2"].status == "error" and "ZeroDivisionError" in by_id["c2"].content
    assert by_id["c3"].status == "error"
    assert "arguments.a" in by_id["c3"].content and "arguments.b" in by_id["c3"].content
    assert by_id["c4"].status == "success" and by_id["c4"].content == "2.0"
    # The sync path (ToolNode.invoke in a thread) behaves the same.
    sync = await asyncio.to_thread(tools[0].invoke, {"type": "tool_call", **calls[2]})
    assert sync.content == "2.0"
