"""Runs through the real mesh: stream modes, interrupts, multitask strategies, cancel, join."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.e2e.cluster import MeshCluster
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.e2e]


async def test_stream_modes_and_messages_tokens(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            t["thread_id"],
            "chat",
            input={"topic": "etcd"},
            stream_mode=["values", "updates", "messages", "custom"],
        )
    ]
    tokens = [p.data[0]["content"] for p in parts if p.event == "messages"]
    assert len(tokens) > 3, tokens  # streamed token by token, not as one message
    assert "".join(tokens) == "tokens about etcd here"
    assert any(p.event == "updates" and "talk" in p.data for p in parts)
    assert parts[-1].lifecycle["status"] == "success"
    assert parts[-1].data == {"topic": "etcd", "answer": "tokens about etcd here"}

    t2 = await client.threads.create()
    parts = [
        p
        async for p in client.runs.stream(
            t2["thread_id"],
            "steps",
            input={"step": 0},
            stream_mode=["custom", "values"],
            config={"configurable": {"steps": 3}},
        )
    ]
    assert [p.data["progress"] for p in parts if p.event == "custom"] == [1, 2, 3]
    assert [p.data["step"] for p in parts if p.event == "values"][-1] == 3


async def test_clients_see_no_internal_metadata(mesh: MeshCluster) -> None:
    """LangGraph copies the run's config into message and checkpoint metadata: the
    runtime's internal keys and the tenant-scoped thread id stay inside."""
    client = mesh.client()
    tid = (await client.threads.create())["thread_id"]
    parts = [
        p
        async for p in client.runs.stream(
            tid,
            "chat",
            input={"topic": "nats"},
            stream_mode=["messages", "debug"],
            config={"configurable": {"user_key": "kept"}},
        )
    ]
    assert parts[-1].lifecycle["status"] == "success"
    metas = [p.data[1] for p in parts if p.event == "messages"]
    assert metas and all(m["thread_id"] == tid for m in metas), metas[:1]
    state = await client.threads.get_state(tid)
    assert state["metadata"]["user_key"] == "kept", state["metadata"]
    keys: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, dict):
            keys.extend(value)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk([p.data for p in parts])
    walk(state)
    assert "fencing_token" not in keys and not [k for k in keys if k.startswith("lgmesh_")]
    seen = json.dumps([[p.data for p in parts], state])
    assert f"acme:{tid}" not in seen, "the tenant-scoped thread id leaked"
    assert any(p.event == "debug" for p in parts) and tid in seen


async def test_interrupt_then_resume(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    parts = [
        p async for p in client.runs.stream(t["thread_id"], "approval", input={"request": "refund"})
    ]
    end = parts[-1].lifecycle
    assert end["status"] == "interrupted"
    assert end["interrupts"][0]["value"] == {"question": "approve refund?"}
    state = await client.threads.get_state(t["thread_id"])
    assert state["next"] == ["ask"] and state["interrupts"][0]["value"] == {
        "question": "approve refund?"
    }
    assert (await client.threads.get(t["thread_id"]))["status"] == "interrupted"

    parts = [
        p async for p in client.runs.stream(t["thread_id"], "approval", command={"resume": True})
    ]
    assert parts[-1].lifecycle["status"] == "success"
    assert parts[-1].data["result"] == "done"
    runs = await client.runs.list(t["thread_id"])
    assert [r["status"] for r in runs] == ["success", "interrupted"]


async def test_multitask_reject_and_enqueue(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    slow = {"configurable": {"delay": 0.3, "steps": 3}}
    first = await client.runs.create(t["thread_id"], "steps", input={"step": 0}, config=slow)
    import grpc

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await client.runs.create(t["thread_id"], "steps", input={"step": 0})
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "busy" in (info.value.details() or "")

    parts = [
        p
        async for p in client.runs.stream(
            t["thread_id"],
            "steps",
            input={"step": 10},
            multitask_strategy="enqueue",
            config={"configurable": {"steps": 12}},
        )
    ]
    assert parts[0].lifecycle["kind"] == "queued"
    assert parts[-1].lifecycle["status"] == "success"
    assert parts[-1].data["step"] == 12
    done = await client.runs.get(t["thread_id"], first["run_id"])
    assert done["status"] == "success"  # the first run finished before the queued one started
    assert parts[-1].data["log"][:3] == [e for e in parts[-1].data["log"][:3] if e.startswith("s")]


async def test_cancel_a_running_run(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    run = await client.runs.create(
        t["thread_id"],
        "steps",
        input={"step": 0},
        config={"configurable": {"delay": 0.5, "steps": 20}},
    )
    got = await client.runs.cancel(t["thread_id"], run["run_id"], wait=True)
    assert got["status"] == "cancelled"
    thread = await client.threads.get(t["thread_id"])
    assert thread["status"] == "idle"
    # the thread is free again
    out = await client.runs.wait(
        t["thread_id"], "steps", input={"step": 0}, config={"configurable": {"steps": 2}}
    )
    assert out["step"] == 2


async def test_background_run_and_join_from_cursor(mesh: MeshCluster) -> None:
    client = mesh.client()
    t = await client.threads.create()
    run = await client.runs.create(
        t["thread_id"],
        "steps",
        input={"step": 0},
        stream_mode=["custom", "values"],
        config={"configurable": {"delay": 0.1, "steps": 4}},
    )
    parts = [p async for p in client.runs.join_stream(t["thread_id"], run["run_id"])]
    seqs = [p.seq for p in parts]
    assert seqs == list(range(1, len(seqs) + 1))
    assert parts[-1].lifecycle["status"] == "success"
    tail = [
        p
        async for p in client.runs.join_stream(
            t["thread_id"], run["run_id"], last_event_id=seqs[-3]
        )
    ]
    assert [p.seq for p in tail] == seqs[-2:]


async def test_threads_search_and_tenant_isolation(mesh: MeshCluster) -> None:
    acme, beta = mesh.client("acme-key"), mesh.client("beta-key")
    a = await acme.threads.create(metadata={"team": "red"})
    await acme.threads.create(metadata={"team": "blue"})
    found = await acme.threads.search(metadata={"team": "red"})
    assert [x["thread_id"] for x in found] == [a["thread_id"]]
    assert await beta.threads.search(metadata={"team": "red"}) == []
    # the same thread id in another tenant is another thread
    b = await beta.threads.create(thread_id=a["thread_id"])
    assert b["thread_id"] == a["thread_id"]
    await acme.runs.wait(
        a["thread_id"], "steps", input={"step": 0}, config={"configurable": {"steps": 1}}
    )
    assert (await beta.threads.get_state(a["thread_id"]))["values"] is None
    await acme.threads.delete(a["thread_id"])
    import grpc

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await acme.threads.get(a["thread_id"])
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert (await beta.threads.get(a["thread_id"]))["thread_id"] == a["thread_id"]


async def test_assistants(mesh: MeshCluster) -> None:
    client = mesh.client()
    names = {a["assistant_id"] for a in await client.assistants.search()}
    assert {"steps", "approval", "chat"} <= names
    chat = await client.assistants.get("chat")
    assert chat["description"].startswith("streams LLM tokens")
    assert "talk" in chat["nodes"]


async def test_runs_spread_over_runtimes(mesh: MeshCluster) -> None:
    client = mesh.client()
    owners = set()

    async def one() -> None:
        t = await client.threads.create()
        parts = [
            p
            async for p in client.runs.stream(
                t["thread_id"], "steps", input={"step": 0}, config={"configurable": {"steps": 1}}
            )
        ]
        owners.add(parts[0].lifecycle["runtime_id"])

    await asyncio.gather(*(one() for _ in range(12)))
    await assert_eventually(
        lambda: len(owners) == 2, timeout=1, message="both runtimes took threads"
    )


async def test_join_a_finished_run_whose_log_is_gone_returns(mesh: MeshCluster, infra) -> None:  # type: ignore[no-untyped-def]
    import nats

    from mesh_core.adapters.nats.subjects import NatsNames

    client = mesh.client()
    t = await client.threads.create()
    out = await client.runs.wait_full(
        t["thread_id"], "steps", input={"step": 0}, config={"configurable": {"steps": 1}}
    )
    run_id = out["run"]["run_id"]
    nc = await nats.connect(infra.nats_url)
    await nc.jetstream().purge_stream(
        NatsNames(mesh.prefix).events_stream, subject=NatsNames(mesh.prefix).run_events(run_id)
    )
    await nc.close()
    parts = [p async for p in client.runs.join_stream(t["thread_id"], run_id)]
    assert parts == []  # nothing left to replay, and the call does not hang


async def _logged_final(infra, prefix: str, run_id: str):  # type: ignore[no-untyped-def]
    import nats

    from mesh_core.adapters.nats.eventlog import RunEventLog
    from mesh_core.adapters.nats.subjects import NatsNames

    nc = await nats.connect(infra.nats_url)
    try:
        last = await RunEventLog(nc, NatsNames(prefix)).last_event(run_id)
    finally:
        await nc.close()
    assert last is not None
    return last[1]


async def test_a_large_output_is_logged_as_its_checkpoint(mesh: MeshCluster, infra) -> None:  # type: ignore[no-untyped-def]
    """The log keeps a reference to the checkpoint, not the state; whoever reads the run
    from the log (WaitForRun, JoinRun) still gets the output the live stream carried."""
    client = mesh.client()
    t = await client.threads.create()
    big = "x" * 6000
    live = [
        p
        async for p in client.runs.stream(
            t["thread_id"],
            "steps",
            input={"step": 0, "log": [big]},
            config={"configurable": {"steps": 2}},
        )
    ]
    run_id = live[-1].run_id
    output = live[-1].data
    assert output["step"] == 2 and output["log"][0] == big
    state = await client.threads.get_state(t["thread_id"])
    logged = await _logged_final(infra, mesh.prefix, run_id)
    assert not logged.HasField("data")
    assert logged.lifecycle.output.checkpoint_id == state["checkpoint_id"]
    assert logged.ByteSize() < 1000
    assert await client.runs.join(t["thread_id"], run_id) == output
    joined = [p async for p in client.runs.join_stream(t["thread_id"], run_id)]
    assert joined[-1].data == output
    assert joined[-1].lifecycle["output"]["checkpoint_id"] == state["checkpoint_id"]

    # a small output stays in the log
    t2 = await client.threads.create()
    small = await client.runs.wait_full(
        t2["thread_id"], "steps", input={"step": 0}, config={"configurable": {"steps": 1}}
    )
    logged = await _logged_final(infra, mesh.prefix, small["run"]["run_id"])
    assert logged.HasField("data")


async def test_a_large_interrupted_output_keeps_its_interrupts(mesh: MeshCluster, infra) -> None:  # type: ignore[no-untyped-def]
    client = mesh.client()
    t = await client.threads.create()
    request = "refund " + "y" * 6000
    live = [
        p async for p in client.runs.stream(t["thread_id"], "approval", input={"request": request})
    ]
    assert live[-1].lifecycle["status"] == "interrupted"
    output = live[-1].data
    assert output["request"] == request and output["__interrupt__"][0]["value"] == {
        "question": f"approve {request}?"
    }
    logged = await _logged_final(infra, mesh.prefix, live[-1].run_id)
    assert not logged.HasField("data") and logged.lifecycle.output.checkpoint_id
    joined = await client.runs.join(t["thread_id"], live[-1].run_id, raise_error=False)
    assert joined == output
