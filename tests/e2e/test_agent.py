"""A LangGraph agent (model + tools loop) with MeshChatModel, through the whole mesh."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from mesh_core.localservers import LocalServers
from tests.e2e.cluster import ROOT, MeshCluster
from tests.helpers import unique_prefix

pytestmark = [pytest.mark.e2e]

DEMO_GRAPHS = str(ROOT / "mesh_demo" / "graphs.yaml")


@pytest.fixture(scope="module")
def agent_cluster(
    infra: LocalServers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MeshCluster]:
    c = MeshCluster(
        infra, unique_prefix("agent"), tmp_path_factory.mktemp("agent"), graphs=DEMO_GRAPHS
    )
    try:
        c.add_llm_gateway()
        c.add_tools()
        c.start(runtimes=2, gateways=1)
        yield c
    finally:
        c.stop()


@pytest.fixture
async def agent_mesh(agent_cluster: MeshCluster) -> AsyncIterator[MeshCluster]:
    try:
        yield agent_cluster
    finally:
        await agent_cluster.aclose_clients()


async def test_agent_tokens_arrive_through_the_public_api(agent_mesh: MeshCluster) -> None:
    client = agent_mesh.client()
    t = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            t["thread_id"],
            "agent",
            input={"messages": [{"type": "human", "content": "etcd leases"}]},
            stream_mode=["messages", "updates"],
        )
    ]
    assert parts[-1].lifecycle["status"] == "success", agent_mesh.logs()
    tokens = [(p.data[0], p.data[1]) for p in parts if p.event == "messages"]
    model_tokens = [
        m["content"] for m, meta in tokens if meta["langgraph_node"] == "model" and m["content"]
    ]
    assert len(model_tokens) > 3  # token chunks, not one message
    answer = "".join(model_tokens)
    assert answer.startswith("Based on the results:")
    # the model asked for the search tool, the tool service answered, the model used it
    tool_calls = [
        m for m, meta in tokens if meta["langgraph_node"] == "model" and m.get("tool_call_chunks")
    ]
    assert tool_calls and tool_calls[0]["tool_call_chunks"][0]["name"] == "search"
    updates = [p.data for p in parts if p.event == "updates"]
    tool_msgs = [m for u in updates if "tools" in u for m in u["tools"]["messages"]]
    assert tool_msgs and tool_msgs[0]["type"] == "tool" and tool_msgs[0]["name"] == "search"
    assert tool_msgs[0]["content"] in answer
    state = await client.threads.get_state(t["thread_id"])
    kinds = [m["type"] for m in state["values"]["messages"]]
    assert kinds == ["human", "ai", "tool", "ai"]
    assert state["values"]["messages"][-1]["usage_metadata"]["total_tokens"] > 0


async def test_runs_away_from_their_call_still_prove_their_tenant(agent_mesh: MeshCluster) -> None:
    """Over mutual TLS every LLM and tool call carries the run's tenant token: a delayed
    run fired later by a runtime's scheduler (no gateway call behind it) and Send tasks
    run by workers (their config came over NATS) are served, not refused."""
    client = agent_mesh.client()
    t = await client.threads.create()
    delayed = await client.runs.create(
        t["thread_id"],
        "agent",
        input={"messages": [{"type": "human", "content": "NATS JetStream"}]},
        after_seconds=1,
    )
    await client.runs.join(t["thread_id"], delayed["run_id"])
    done = await client.runs.get(t["thread_id"], delayed["run_id"])
    assert done["status"] == "success", agent_mesh.logs()

    t2 = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            t2["thread_id"], "demo", input={"question": "mesh"}, stream_mode=["custom"]
        )
    ]
    assert parts[-1].lifecycle["status"] == "success", agent_mesh.logs()
    researched = [p.data for p in parts if p.event == "custom" and p.data["node"] == "researcher"]
    assert len(researched) >= 2  # Send tasks on workers, each calling the model and a tool
