"""MeshChatModel against an in-process gateway (scripted provider, in-memory store).

Covers invoke/ainvoke, stream/astream token chunks, bind_tools round trips, usage
metadata, error translation, and idempotency keys derived from the LangGraph task:
a LangGraph model + tools loop streams tokens in ``messages`` mode, and a node retried
by LangGraph's retry policy gets its completed LLM call replayed, not paid again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import grpc
import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.tools import tool
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import RetryPolicy

from llm_gateway_svc import LlmGatewaySettings
from llm_gateway_svc.config import LimitRule, LimitSettings
from mesh_client.llm import (
    LlmGatewayError,
    LlmRateLimitError,
    LlmUnavailableError,
    MeshChatModel,
    task_idempotency_key,
)
from tests.support.llm_memory_store import MemoryLlmStore
from tests.support.llm_processes import gateway_in_thread


@dataclass
class Gateway:
    address: str
    store: MemoryLlmStore


@pytest.fixture(scope="module")
def gateway() -> Iterator[Gateway]:
    """The default (demo) config, plus a rate-limited tenant, served from a thread."""
    settings = LlmGatewaySettings.load(None, env={}, port=0)
    settings = replace(settings, limits=LimitSettings(tenants={"tiny": LimitRule(rpm=1)}))
    store = MemoryLlmStore()
    with gateway_in_thread(settings, store) as address:
        yield Gateway(address, store)


@tool
def search(query: str) -> str:
    """Search the web."""
    return f"results for {query}"


RESEARCHER = SystemMessage("You are a researcher.")


def test_invoke_and_stream_sync(gateway: Gateway) -> None:
    model = MeshChatModel(target=gateway.address, model="mesh-demo")
    msg = model.invoke([SystemMessage("You are the planner."), HumanMessage("tides")])
    assert isinstance(msg, AIMessage)
    assert msg.content.count("tides") == 3
    assert msg.usage_metadata is not None and msg.usage_metadata["input_tokens"] == 5
    assert msg.response_metadata["finish_reason"] == "stop"
    assert msg.response_metadata["provider"] == "scripted"
    chunks = list(model.stream([SystemMessage("You are the planner."), HumanMessage("tides")]))
    assert len(chunks) > 5
    full = sum(chunks[1:], chunks[0])
    assert full.content == msg.content
    assert (
        full.usage_metadata is not None
        and full.usage_metadata["total_tokens"] == msg.usage_metadata["total_tokens"]
    )


async def test_bind_tools_round_trip_async(gateway: Gateway) -> None:
    model = MeshChatModel(target=gateway.address, model="mesh-demo").bind_tools([search])
    first = await model.ainvoke([RESEARCHER, HumanMessage("tides")])
    assert isinstance(first, AIMessage)
    (call,) = first.tool_calls
    assert call["name"] == "search" and call["args"] == {"query": "tides"} and call["id"]
    assert first.response_metadata["finish_reason"] == "tool_calls"
    # Streamed tool calls assemble into the same call.
    chunks = [c async for c in model.astream([RESEARCHER, HumanMessage("tides")])]
    merged = sum(chunks[1:], chunks[0])
    assert isinstance(merged, AIMessageChunk)
    assert merged.tool_calls == [call]
    answer = await model.ainvoke(
        [
            RESEARCHER,
            HumanMessage("tides"),
            first,
            ToolMessage(search.invoke(call["args"]), tool_call_id=call["id"]),
        ]
    )
    assert answer.content == "Findings on tides: results for tides"


async def test_errors_are_translated(gateway: Gateway) -> None:
    with pytest.raises(LlmGatewayError) as exc:
        await MeshChatModel(target=gateway.address, model="nope").ainvoke("hi")
    assert exc.value.code == grpc.StatusCode.NOT_FOUND and exc.value.reason == "MODEL_NOT_FOUND"
    tiny = MeshChatModel(target=gateway.address, tenant="tiny")
    await tiny.ainvoke("one")
    with pytest.raises(LlmRateLimitError) as exc2:
        await tiny.ainvoke("two")
    assert exc2.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert exc2.value.status_code == 429 and exc2.value.reason == "RATE_LIMITED"
    assert not isinstance(exc2.value, ConnectionError)  # a quota, not an outage
    assert exc2.value.retry_after is not None and exc2.value.retry_after > 0
    with pytest.raises(ValueError):
        await MeshChatModel(model="mesh-demo").ainvoke("no target")


# gRPC code the gateway answers -> the HTTP status a provider SDK reports for the same case.
PARITY = [
    (grpc.StatusCode.INVALID_ARGUMENT, 400, "BadRequestError"),
    (grpc.StatusCode.UNAUTHENTICATED, 401, "AuthenticationError"),
    (grpc.StatusCode.PERMISSION_DENIED, 403, "PermissionDeniedError"),
    (grpc.StatusCode.NOT_FOUND, 404, "NotFoundError"),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "RateLimitError"),
    (grpc.StatusCode.INTERNAL, 500, "InternalServerError"),
    (grpc.StatusCode.UNAVAILABLE, 503, "InternalServerError"),
]


@pytest.mark.parametrize("sdk", ["openai", "anthropic"])
def test_langgraph_retry_policy_treats_mesh_errors_like_the_sdks(sdk: str) -> None:
    """LangGraph's default retry policy decides for a call through the mesh as it would
    for the same failure raised by the provider's SDK (direct call)."""
    import httpx
    from langgraph._internal._retry import default_retry_on

    from mesh_client._llm_errors import _CLASSES, LlmGatewayError

    mod = pytest.importorskip(sdk)
    req = httpx.Request("POST", "http://127.0.0.1/v1")
    for code, status, name in PARITY:
        sdk_exc = getattr(mod, name)("x", response=httpx.Response(status, request=req), body=None)
        mesh_exc = _CLASSES.get(code, LlmGatewayError)("x", code=code)
        assert default_retry_on(mesh_exc) == default_retry_on(sdk_exc), code
        assert mesh_exc.status_code == status or code == grpc.StatusCode.UNAVAILABLE
    timeout = mod.APITimeoutError(request=req)
    mesh_timeout = _CLASSES[grpc.StatusCode.DEADLINE_EXCEEDED](
        "x", code=grpc.StatusCode.DEADLINE_EXCEEDED
    )
    assert default_retry_on(mesh_timeout) == default_retry_on(timeout)
    assert isinstance(
        mesh_timeout, LlmUnavailableError
    )  # an APITimeoutError is a connection error too


def test_no_idempotency_key_outside_a_graph() -> None:
    assert task_idempotency_key() == ""


async def test_langgraph_agent_streams_tokens_and_round_trips_tools(gateway: Gateway) -> None:
    model = MeshChatModel(target=gateway.address, model="mesh-demo", tenant="agent").bind_tools(
        [search]
    )

    async def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke([RESEARCHER, *state["messages"]])]}

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode([search]))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    app = graph.compile()

    tokens: list[str] = []
    tool_chunks = 0
    async for msg, meta in app.astream(
        {"messages": [HumanMessage("tides")]}, stream_mode="messages"
    ):
        if meta["langgraph_node"] == "agent" and isinstance(msg, AIMessageChunk):
            tokens += [msg.content] if msg.content else []
            tool_chunks += len(msg.tool_call_chunks)
    assert tokens[:3] == ["Findings ", "on ", "tides: "]  # token by token, not one message
    assert "".join(tokens) == "Findings on tides: results for tides"
    assert tool_chunks >= 2
    final = await app.ainvoke({"messages": [HumanMessage("tides")]})
    kinds = [type(m).__name__ for m in final["messages"]]
    assert kinds == ["HumanMessage", "AIMessage", "ToolMessage", "AIMessage"]
    assert final["messages"][2].tool_call_id == final["messages"][1].tool_calls[0]["id"]
    # Each LLM call inside a task carried its own idempotency key.
    # and the gateway stored the answer (with its usage) before replying.
    assert (await gateway.store.usage("agent"))["requests"] == 4
    assert len([k for k in gateway.store.idem if k.startswith("agent:")]) == 4


async def test_retried_node_replays_completed_llm_call(gateway: Gateway) -> None:
    model = MeshChatModel(target=gateway.address, model="mesh-demo", tenant="retry")
    seen: list[dict[str, Any]] = []

    async def node(state: MessagesState) -> dict[str, Any]:
        # Concurrent calls: their order may differ between attempts, their keys may not.
        first, second = await asyncio.gather(
            model.ainvoke([SystemMessage("You are the planner."), *state["messages"]]),
            model.ainvoke([SystemMessage("You are the writer."), *state["messages"]]),
        )
        seen.append({"first": first.response_metadata, "second": second.response_metadata})
        if len(seen) == 1:
            raise ConnectionError("the node fails after paying for its LLM calls")
        return {"messages": [second]}

    graph = StateGraph(MessagesState)
    graph.add_node("node", node, retry_policy=RetryPolicy(initial_interval=0.01, jitter=False))
    graph.add_edge(START, "node")
    app = graph.compile()
    out = await app.ainvoke({"messages": [HumanMessage("retry me")]})
    assert out["messages"][-1].content.startswith("Report")
    assert [s["first"]["replayed"] for s in seen] == [False, True]
    assert [s["second"]["replayed"] for s in seen] == [False, True]
    assert (await gateway.store.usage("retry"))["requests"] == 2  # paid once
