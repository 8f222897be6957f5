"""Graphs used by the benchmarks (imported by runtime processes too)."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AnyMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from typing_extensions import TypedDict


class Counter(TypedDict, total=False):
    n: int


def _inc(state: Counter) -> dict[str, Any]:
    return {"n": state.get("n", 0) + 1}


def build_chain(length: int = 10) -> Any:
    b = StateGraph(Counter)
    prev = START
    for i in range(length):
        b.add_node(f"n{i}", _inc)
        b.add_edge(prev, f"n{i}")
        prev = f"n{i}"
    b.add_edge(prev, END)
    return b


chain10 = build_chain(10).compile()


class ChatState(TypedDict, total=False):
    messages: Annotated[list[AnyMessage], add_messages]
    turns: int


def _reply(state: ChatState) -> dict[str, Any]:
    return {"turns": state.get("turns", 0) + 1}


def build_chat() -> Any:
    """A chat thread: each run's input adds one message; one node counts the turns."""
    b = StateGraph(ChatState)
    b.add_node("reply", _reply)
    b.add_edge(START, "reply")
    b.add_edge("reply", END)
    return b


chat = build_chat().compile()


class ToolCall(TypedDict, total=False):
    tool: str
    args: dict[str, Any]
    result: str


_tool_channels: dict[str, Any] = {}


async def _call_tool(state: ToolCall, config: RunnableConfig) -> dict[str, Any]:
    """One InvokeTool on the mesh's tool service (LGMESH_TOOLS_ADDR) as the run's tenant,
    over the runtime's mutual TLS with the run's tenant token (as graph code does)."""
    import json
    import os

    from lgmesh.tools.v1 import tools_pb2, tools_pb2_grpc

    from mesh_client._llm_common import run_token_metadata
    from mesh_core.security import internal_security

    address = os.environ["LGMESH_TOOLS_ADDR"]
    if address not in _tool_channels:
        channel = internal_security().channel(address, "tools")
        _tool_channels[address] = tools_pb2_grpc.ToolServiceStub(channel)
    resp = await _tool_channels[address].InvokeTool(
        tools_pb2.InvokeToolRequest(
            tenant_id=config["metadata"]["lgmesh_tenant"],
            name=state["tool"],
            arguments_json=json.dumps(state.get("args", {})),
        ),
        metadata=run_token_metadata(config),
    )
    return {"result": resp.content_json}


def build_tool_call() -> Any:
    """A run that calls one tool of the tool service (bench/noisy_neighbor.py)."""
    b = StateGraph(ToolCall)
    b.add_node("call", _call_tool)
    b.add_edge(START, "call")
    b.add_edge("call", END)
    return b


tool_call = build_tool_call().compile()
