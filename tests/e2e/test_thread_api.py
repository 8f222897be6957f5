"""The thread, run and assistant API through the Python client (shaped like langgraph_sdk).

Each test uses threads of its own on the shared mesh. Bad input gets a typed error
carrying the gRPC status: unknown checkpoint -> NOT_FOUND, a node that is not one ->
INVALID_ARGUMENT, another tenant's thread -> NOT_FOUND.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import grpc
import pytest

from mesh_client import get_sync_client
from mesh_client.errors import (
    BadRequestError,
    ConflictError,
    NotFoundError,
    RunFailedError,
)
from tests.e2e.cluster import MeshCluster
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.e2e]

STEPS3 = {"configurable": {"steps": 3}}


async def _ran(client: Any, graph: str = "steps", **kw: Any) -> str:
    t = await client.threads.create()
    await client.runs.wait(t["thread_id"], graph, **kw)
    return str(t["thread_id"])


async def test_history_update_state_and_fork(mesh: MeshCluster) -> None:
    client = mesh.client()
    tid = await _ran(client, input={"step": 0}, config=STEPS3)
    history = await client.threads.get_history(tid, limit=20)
    # input, then one checkpoint per step: newest first, each the parent of the one before
    assert [h["metadata"]["step"] for h in history] == [3, 2, 1, 0, -1]
    assert [h["metadata"]["source"] for h in history][-1] == "input"
    for newer, older in itertools.pairwise(history):
        assert newer["parent_checkpoint"]["checkpoint_id"] == older["checkpoint"]["checkpoint_id"]
    assert history[0]["next"] == [] and history[1]["next"] == ["work"]
    assert history[1]["tasks"][0]["name"] == "work"
    assert len(await client.threads.get_history(tid, limit=2)) == 2
    older = await client.threads.get_history(tid, before=history[1]["checkpoint"], limit=10)
    assert [h["metadata"]["step"] for h in older] == [1, 0, -1]
    assert [
        h["metadata"]["step"] for h in await client.threads.get_history(tid, metadata={"step": 2})
    ] == [2]

    # update_state as a node, then the thread goes on from it
    upd = await client.threads.update_state(tid, {"step": 10, "log": ["manual"]}, as_node="work")
    state = await client.threads.get_state(tid)
    assert state["checkpoint"]["checkpoint_id"] == upd["checkpoint"]["checkpoint_id"]
    assert state["values"]["step"] == 10 and state["values"]["log"][-1] == "manual"
    assert state["metadata"]["source"] == "update"

    # fork from the checkpoint after step 1 with new input: a new branch, the old one kept
    step1 = next(h for h in history if h["metadata"]["step"] == 1)
    out = await client.runs.wait(
        tid,
        "steps",
        input={"step": 100},
        checkpoint_id=step1["checkpoint"]["checkpoint_id"],
        config=STEPS3,
    )
    assert out["step"] == 101 and out["done"]
    latest = await client.threads.get_state(tid)
    assert latest["values"]["step"] == 101
    # time travel with no input: replays from that checkpoint
    replay = await client.runs.wait(
        tid,
        "steps",
        input=None,
        checkpoint={"checkpoint_id": step1["checkpoint"]["checkpoint_id"]},
        config=STEPS3,
    )
    assert replay["step"] == 3


async def test_bad_state_requests(mesh: MeshCluster) -> None:
    acme, beta = mesh.client(), mesh.client("beta-key")
    tid = await _ran(acme, input={"step": 0}, config=STEPS3)
    with pytest.raises(NotFoundError) as nf:
        await acme.threads.get_state(tid, checkpoint_id="1f0-no-such-checkpoint")
    assert nf.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(NotFoundError):
        await acme.runs.wait(tid, "steps", input={"step": 0}, checkpoint_id="1f0-nope")
    with pytest.raises(NotFoundError):
        await acme.threads.update_state(tid, {"step": 1}, checkpoint_id="1f0-nope")
    with pytest.raises(BadRequestError) as bad:
        await acme.threads.update_state(tid, {"step": 1}, as_node="nope")
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert any("as_node" in v for v in bad.value.violations)
    for call in (
        beta.threads.get_state(tid),
        beta.threads.get_history(tid),
        beta.threads.update_state(tid, {"step": 1}),
        beta.threads.copy(tid),
        beta.threads.delete(tid),
    ):
        with pytest.raises(NotFoundError):
            await call
    assert (await acme.threads.get_state(tid))["values"]["step"] == 3  # untouched


async def test_copy_then_run_both(mesh: MeshCluster) -> None:
    client = mesh.client()
    tid = await _ran(client, input={"step": 0}, config=STEPS3)
    await client.threads.update(tid, metadata={"team": "a", "gone": None})
    copy = await client.threads.copy(tid)
    assert copy["thread_id"] != tid and copy["metadata"]["team"] == "a"
    assert (await client.threads.get_state(copy["thread_id"]))["values"]["step"] == 3
    a = await client.runs.wait(tid, "steps", input={"step": 10}, config=STEPS3)
    b = await client.runs.wait(copy["thread_id"], "steps", input={"step": 20}, config=STEPS3)
    assert (a["step"], b["step"]) == (11, 21)
    assert len(a["log"]) == len(b["log"]) == 4  # three before the copy, one each after


async def test_thread_metadata_count_search_and_prune(mesh: MeshCluster) -> None:
    client = mesh.client()
    tag = f"t{id(mesh)}-{asyncio.get_running_loop().time()}"
    t1 = await client.threads.create(metadata={"tag": tag})
    await client.threads.create(metadata={"tag": tag})
    assert t1["created_at"] and t1["updated_at"]
    assert await client.threads.count(metadata={"tag": tag}) == 2
    updated = await client.threads.update(t1["thread_id"], metadata={"extra": 1})
    assert updated["metadata"] == {"tag": tag, "extra": 1}
    found = await client.threads.search(ids=[t1["thread_id"]])
    assert [t["thread_id"] for t in found] == [t1["thread_id"]]

    tid = await _ran(client, input={"step": 0}, config=STEPS3)
    assert len(await client.threads.get_history(tid, limit=50)) == 5
    out = await client.threads.prune([tid], strategy="keep_latest")
    assert out == {"pruned_count": 1}
    assert len(await client.threads.get_history(tid, limit=50)) == 1
    assert (await client.threads.get_state(tid))["values"]["step"] == 3
    assert await client.threads.prune([tid], strategy="delete") == {"pruned_count": 1}
    with pytest.raises(NotFoundError):
        await client.threads.get(tid)


async def test_failed_run_wait_raises_and_task_error_type(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    with pytest.raises(RunFailedError) as failed:
        await client.runs.wait(t["thread_id"], "boom", input={"item": "x"})
    assert failed.value.error_type == "ValueError"
    full = await client.runs.wait_full(t["thread_id"], "boom", input={"item": "y"})
    assert full["run"]["status"] == "error" and full["values"] is None
    assert full["run"]["error"]["type"] == "ValueError"
    state = await client.threads.get_state(t["thread_id"])
    assert state["tasks"][0]["name"] == "explode"
    assert state["tasks"][0]["error"] == {"type": "ValueError", "message": "cannot handle 'y'"}
    runs = await client.runs.list(t["thread_id"], status="error")
    assert len(runs) == 2 and all(r["created_at"] for r in runs)
    assert await client.runs.list(t["thread_id"], status="success") == []


async def test_resume_with_another_graph_is_refused(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    await client.runs.wait(t["thread_id"], "approval", input={"request": "r"})
    with pytest.raises(ConflictError) as refused:
        await client.runs.wait(t["thread_id"], "steps", command={"resume": True})
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "approval" in refused.value.message
    assert refused.value.metadata["thread_graph_id"] == "approval"
    out = await client.runs.wait(t["thread_id"], "approval", command={"resume": True})
    assert out["result"] == "done"  # the interrupt is still there for its own graph


async def test_stateless_runs(mesh: MeshCluster) -> None:
    client = mesh.client()
    out = await client.runs.wait_full(None, "steps", input={"step": 0}, config=STEPS3)
    assert out["values"]["step"] == 3
    gone = out["run"]["thread_id"]

    async def deleted() -> bool:
        try:
            await client.threads.get(gone)
        except NotFoundError:
            return True
        return False

    # its owner deletes the thread right after the run's final event
    await assert_eventually(deleted, timeout=5, message="the stateless run's thread went")
    kept = await client.runs.wait_full(
        None, "steps", input={"step": 0}, config=STEPS3, on_completion="keep"
    )
    state = await client.threads.get_state(kept["run"]["thread_id"])
    assert state["values"]["step"] == 3


async def test_runs_join_delete_cancel_many_durability(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    slow = {"configurable": {"steps": 3, "delay": 0.3}}
    run = await client.runs.create(t["thread_id"], "steps", input={"step": 0}, config=slow)
    assert run["status"] in ("pending", "running") and run["created_at"]
    with pytest.raises(ConflictError):
        await client.runs.delete(t["thread_id"], run["run_id"])  # still running
    joined = await client.runs.join(t["thread_id"], run["run_id"])
    assert joined["step"] == 3
    await client.runs.delete(t["thread_id"], run["run_id"])
    with pytest.raises(NotFoundError):
        await client.runs.get(t["thread_id"], run["run_id"])

    busy = {"configurable": {"steps": 3, "delay": 1.0}}  # still running when the next is queued
    first = await client.runs.create(t["thread_id"], "steps", input={"step": 0}, config=busy)
    queued = await client.runs.create(
        t["thread_id"], "steps", input={"step": 0}, config=slow, multitask_strategy="enqueue"
    )
    with pytest.raises(ConflictError) as busy_thread:  # its owner writes only an idle thread
        await client.threads.update_state(t["thread_id"], {"step": 9})
    assert busy_thread.value.reason == "THREAD_BUSY"
    cancelled = await client.runs.cancel_many(thread_id=t["thread_id"], status="pending")
    assert [r["run_id"] for r in cancelled] == [queued["run_id"]]
    assert cancelled[0]["status"] == "cancelled"
    stopped = await client.runs.cancel_many(run_ids=[first["run_id"]], action="interrupt")
    assert [r["run_id"] for r in stopped] == [first["run_id"]]
    await client.runs.join(t["thread_id"], first["run_id"], raise_error=False)
    assert (await client.runs.get(t["thread_id"], first["run_id"]))["status"] == "cancelled"

    for durability in ("async", "exit"):
        d = await client.threads.create()
        out = await client.runs.wait(
            d["thread_id"], "steps", input={"step": 0}, config=STEPS3, durability=durability
        )
        assert out["step"] == 3
        hist = await client.threads.get_history(d["thread_id"], limit=10)
        assert hist[0]["values"]["step"] == 3
        if durability == "exit":
            assert len(hist) < 5  # only what the run saved when it exited


async def test_stream_modes_tasks_checkpoints_messages_tuple(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            t["thread_id"],
            "chat",
            input={"topic": "mesh"},
            stream_mode=["tasks", "checkpoints", "messages-tuple"],
        )
    ]
    modes = {p.event for p in parts}
    assert {"tasks", "checkpoints", "messages", "lifecycle"} <= modes
    task_names = {p.data.get("name") for p in parts if p.event == "tasks"}
    assert "talk" in task_names
    assert any(p.event == "checkpoints" and "values" in p.data for p in parts)


async def test_assistants_with_config_and_versions(mesh: MeshCluster) -> None:
    client = mesh.client()
    listed = await client.assistants.search(limit=100)
    assert {"steps", "approval", "chat"} <= {a["assistant_id"] for a in listed}
    assert all("input_schema" not in a for a in listed)  # compact records
    chat = await client.assistants.get("chat", with_schemas=True)
    assert "talk" in chat["nodes"] and chat["input_schema"]["type"] == "object"

    two = await client.assistants.create(
        "steps", config={"configurable": {"steps": 2}}, metadata={"team": "x"}, name="two steps"
    )
    aid = two["assistant_id"]
    assert two["version"] == 1 and two["graph_id"] == "steps"
    t = await client.threads.create()
    assert (await client.runs.wait(t["thread_id"], aid, input={"step": 0}))["step"] == 2
    four = await client.assistants.update(aid, config={"configurable": {"steps": 4}})
    assert four["version"] == 2
    t2 = await client.threads.create()
    assert (await client.runs.wait(t2["thread_id"], aid, input={"step": 0}))["step"] == 4
    # the run's own config wins over the assistant's
    t3 = await client.threads.create()
    out = await client.runs.wait(t3["thread_id"], aid, input={"step": 0}, config=STEPS3)
    assert out["step"] == 3
    assert [v["version"] for v in await client.assistants.get_versions(aid)] == [2, 1]
    back = await client.assistants.set_latest(aid, 1)
    assert back["config"] == {"configurable": {"steps": 2}}
    assert (await client.assistants.get(aid))["version"] == 1
    assert await client.assistants.count(metadata={"team": "x"}) == 1
    assert [a["assistant_id"] for a in await client.assistants.search(name="two st")] == [aid]

    graph = await client.assistants.get_graph(aid)
    assert {n["id"] for n in graph["nodes"]} >= {"__start__", "work", "__end__"}
    assert any(e["source"] == "__start__" and e["target"] == "work" for e in graph["edges"])
    schemas = await client.assistants.get_schemas(aid)
    assert schemas["graph_id"] == "steps" and "step" in schemas["input_schema"]["properties"]
    assert await client.assistants.get_subgraphs(aid) == {}

    with pytest.raises(ConflictError):
        await client.assistants.update("steps", config={})  # a graph's own assistant
    with pytest.raises(NotFoundError):
        await client.assistants.create("no-such-graph")
    other = mesh.client("beta-key")
    with pytest.raises(NotFoundError):
        await other.assistants.get(aid)
    await client.assistants.delete(aid)
    with pytest.raises(NotFoundError):
        await client.assistants.get(aid)


async def test_sync_client(mesh: MeshCluster) -> None:
    def use() -> tuple[int, list[str]]:
        with get_sync_client(url=mesh.gateways[0].address, api_key="acme-key") as client:
            t = client.threads.create()
            out = client.runs.wait(t["thread_id"], "steps", input={"step": 0}, config=STEPS3)
            events = [
                p.event
                for p in client.runs.stream(
                    t["thread_id"], "steps", input={"step": 0}, config=STEPS3
                )
            ]
            with pytest.raises(NotFoundError):
                client.threads.get("no-such-thread")
            return out["step"], events

    step, events = await asyncio.to_thread(use)
    assert step == 3 and events[0] == "lifecycle" and "values" in events


async def test_delayed_runs(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    start = asyncio.get_running_loop().time()
    run = await client.runs.create(
        t["thread_id"], "steps", input={"step": 0}, config=STEPS3, after_seconds=1
    )
    assert run["status"] == "pending"
    out = await client.runs.join(t["thread_id"], run["run_id"])
    assert out["step"] == 3 and asyncio.get_running_loop().time() - start >= 1
    assert (await client.runs.get(t["thread_id"], run["run_id"]))["status"] == "success"

    later = await client.runs.create(t["thread_id"], "steps", input={"step": 0}, after_seconds=60)
    cancelled = await client.runs.cancel(t["thread_id"], later["run_id"])
    assert cancelled["status"] == "cancelled"
    parts = [
        p.event
        async for p in client.runs.stream(
            t["thread_id"], "steps", input={"step": 0}, config=STEPS3, after_seconds=0.5
        )
    ]
    assert parts[0] == "lifecycle" and "values" in parts


async def test_thread_ttl(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create(ttl=1 / 60)  # one second, in langgraph_sdk's minutes
    assert t["ttl"] == pytest.approx(1 / 60)
    await client.runs.wait(t["thread_id"], "steps", input={"step": 0}, config=STEPS3)
    kept = await client.threads.create()
    assert kept["ttl"] is None

    async def expired() -> bool:
        try:
            await client.threads.get(t["thread_id"])
        except NotFoundError:
            return True
        return False

    await assert_eventually(expired, timeout=10, message="the thread expired")
    assert (await client.threads.get(kept["thread_id"]))["thread_id"] == kept["thread_id"]
