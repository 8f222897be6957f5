"""The remote executor's owner and worker halves wired back to back in one process.

``LoopbackExecutor`` replaces the NATS queue with a direct call into a
``TaskWorker``'s execution path (the wire encoding is still applied both ways), so
these tests cover task selection, rebuilding, replies, interrupts, errors,
concurrency caps and cancellation without servers.
"""

from __future__ import annotations

import asyncio
import operator
from dataclasses import replace
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from mesh_core.config import InfraSettings
from runtime_svc.remote import (
    RemoteExecutor,
    RemoteTaskError,
    TaskDeadLetteredError,
    TaskWorker,
)
from runtime_svc.remote._wire import (
    TaskReply,
    TaskRequest,
    decode_reply,
    decode_request,
    encode_reply,
    encode_request,
)
from tests.helpers import assert_eventually

SETTINGS = InfraSettings(prefix="unit")


class State(TypedDict, total=False):
    n: int
    out: Annotated[list[int], operator.add]
    total: int
    answer: str


class Item(TypedDict):
    i: int


def _fan(state: State) -> list[Send]:
    return [Send("work", {"i": i}) for i in range(state["n"])]


def _work(item: Item) -> dict[str, Any]:
    get_stream_writer()({"i": item["i"]})
    return {"out": [item["i"] * 10]}


def _ask(item: Item) -> dict[str, Any]:
    if item["i"] == 0:
        return {"out": [0], "answer": str(interrupt("ok?"))}
    return {"out": [item["i"]]}


def _boom(item: Item) -> dict[str, Any]:
    raise KeyError(f"missing {item['i']}")


def _total(state: State) -> dict[str, Any]:
    return {"total": sum(state.get("out", []))}


def build(work: Any = _work, *, work_meta: Any = None, total_meta: Any = None) -> Any:
    b = StateGraph(State)
    b.add_node("work", work, metadata=work_meta)
    b.add_node("total", _total, metadata=total_meta)
    b.add_conditional_edges(START, _fan, ["work"])
    b.add_edge("work", "total")
    b.add_edge("total", END)
    return b


class _Msg:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.subject = "unit.taskreply.x"


class LoopbackExecutor(RemoteExecutor):
    """An owner whose task queue is a direct call into an in-process TaskWorker."""

    def __init__(self, graph: Any, cp: InMemorySaver, *, delay: float = 0.0) -> None:
        super().__init__(SETTINGS, cp, owner_id="unit")
        self.worker = TaskWorker(SETTINGS, {"g": graph}, cp, worker_id="uw")
        self.published: list[TaskRequest] = []
        self.cancels: list[tuple[str, list[str] | None]] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.delay = delay
        self.inflight = 0
        self.max_inflight = 0
        self.tamper: Any = None
        self.reply_override: Any = None
        self._deliveries: set[asyncio.Future[None]] = set()

        async def send(subject: str, data: bytes) -> None:
            # the worker's event batches go straight to the owner's reply handler
            await self._on_reply(_Msg(data))  # type: ignore[arg-type]

        self.worker._send = send  # type: ignore[method-assign]

    async def _publish(self, req: TaskRequest) -> None:
        raw = encode_request(self.serde, req)
        self.published.append(req)
        delivery = asyncio.ensure_future(self._deliver(raw))
        self._deliveries.add(delivery)
        delivery.add_done_callback(self._deliveries.discard)

    async def _deliver(self, raw: bytes) -> None:
        req = decode_request(self.worker.serde, raw)
        if self.tamper is not None:
            req = self.tamper(req)
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            await self.gate.wait()
            await asyncio.sleep(self.delay)
            reply = (
                self.reply_override(req)
                if self.reply_override is not None
                else await self.worker._execute(req, 1)
            )
        finally:
            self.inflight -= 1
        await self._on_reply(_Msg(encode_reply(self.worker.serde, reply)))  # type: ignore[arg-type]

    async def _broadcast_cancel(self, invocation_id: str, task_ids: list[str] | None) -> None:
        self.cancels.append((invocation_id, task_ids))

    async def _respond(self, subject: str, data: bytes) -> None:
        # answers to the worker's @task calls
        self.worker.calls.on_result(data)


def _cfg(thread: str = "t") -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


async def _stream_values(graph: Any, inp: Any, cfg: Any) -> tuple[dict[str, Any], list[Any]]:
    custom: list[Any] = []
    last: dict[str, Any] = {}
    async for mode, chunk in graph.astream(
        inp, cfg, stream_mode=["values", "custom"], durability="sync"
    ):
        if mode == "custom":
            custom.append(chunk)
        else:
            last = chunk
    return last, custom


async def test_send_tasks_go_remote_and_match_in_process() -> None:
    local = await build().compile(checkpointer=InMemorySaver()).ainvoke({"n": 20}, _cfg())
    cp = InMemorySaver()
    graph = build().compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    async with ex.run(_cfg(), graph_id="g") as cfg:
        out, custom = await _stream_values(graph, {"n": 20}, cfg)
        run = ex.run_of(cfg)
    assert out == local
    assert [r.task_name for r in ex.published] == ["work"] * 20
    assert sorted(c["i"] for c in custom) == list(range(20))
    assert run is not None and run.stats.ok == 20 and run.stats.submitted == 20


async def test_node_metadata_opts_out_and_in() -> None:
    cp = InMemorySaver()
    graph = build(work_meta={"lgmesh_remote": False}, total_meta={"lgmesh_remote": True})
    graph = graph.compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    async with ex.run(_cfg(), graph_id="g") as cfg:
        out, _ = await _stream_values(graph, {"n": 5}, cfg)
    assert out["total"] == 100
    assert [r.task_name for r in ex.published] == ["total"]


async def test_mode_all_and_none() -> None:
    cp = InMemorySaver()
    graph = build().compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    async with ex.run(_cfg("a"), graph_id="g", remote="all") as cfg:
        out, _ = await _stream_values(graph, {"n": 3}, cfg)
    assert out["total"] == 30
    assert sorted({r.task_name for r in ex.published}) == ["total", "work"]
    ex.published.clear()
    async with ex.run(_cfg("b"), graph_id="g", remote="none") as cfg:
        out, _ = await _stream_values(graph, {"n": 3}, cfg)
    assert out["total"] == 30 and ex.published == []


async def test_subgraph_tasks_stay_on_owner() -> None:
    cp = InMemorySaver()
    inner = build().compile()
    outer = StateGraph(State)
    outer.add_node("inner", inner)
    outer.add_edge(START, "inner")
    outer.add_edge("inner", END)
    graph = outer.compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    async with ex.run(_cfg(), graph_id="g") as cfg:
        out, _ = await _stream_values(graph, {"n": 4}, cfg)
    assert out["total"] == 60
    assert ex.published == []


async def test_max_concurrency_caps_inflight_remote_tasks() -> None:
    cp = InMemorySaver()
    graph = build().compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp, delay=0.01)
    async with ex.run(_cfg(), graph_id="g", max_concurrency=3) as cfg:
        out, _ = await _stream_values(graph, {"n": 12}, cfg)
    assert out["total"] == sum(i * 10 for i in range(12))
    assert ex.max_inflight == 3


async def test_interrupt_pauses_and_resume_completes() -> None:
    cp = InMemorySaver()
    graph = build(_ask).compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    async with ex.run(_cfg(), graph_id="g") as cfg:
        out, _ = await _stream_values(graph, {"n": 3}, cfg)
    state = await graph.aget_state(_cfg())
    assert state.next == ("work",)
    assert [i.value for i in state.interrupts] == ["ok?"]
    assert "total" not in out
    ex.published.clear()
    async with ex.run(_cfg(), graph_id="g") as cfg:
        out, _ = await _stream_values(graph, Command(resume="yes"), cfg)
    assert out["answer"] == "yes" and out["total"] == 3
    # only the interrupted task ran again, on the worker, with the resume value
    assert len(ex.published) == 1 and ex.published[0].null_resume == "yes"


async def test_node_error_is_raised_with_its_type() -> None:
    cp = InMemorySaver()
    graph = build(_boom).compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    async with ex.run(_cfg(), graph_id="g") as cfg:
        with pytest.raises(KeyError, match="missing") as info:
            await graph.ainvoke({"n": 2}, cfg, durability="sync")
    assert any("remote worker uw" in n for n in info.value.__notes__)


async def test_task_id_checksum_mismatch_is_refused() -> None:
    cp = InMemorySaver()
    graph = build().compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    ex.tamper = lambda req: replace(req, step=req.step + 1)  # a different task id
    async with ex.run(_cfg(), graph_id="g") as cfg:
        with pytest.raises(RemoteTaskError, match="task id mismatch"):
            await graph.ainvoke({"n": 2}, cfg, durability="sync")


async def test_dead_lettered_reply_fails_the_run() -> None:
    cp = InMemorySaver()
    graph = build().compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    ex.reply_override = lambda req: TaskReply(
        task_id=req.task_id, invocation_id=req.invocation_id, status="dead"
    )
    async with ex.run(_cfg(), graph_id="g") as cfg:
        with pytest.raises(TaskDeadLetteredError):
            await graph.ainvoke({"n": 2}, cfg, durability="sync")


async def test_cancelling_the_run_cancels_outstanding_tasks_and_drops_late_replies() -> None:
    cp = InMemorySaver()
    graph = build().compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    ex.gate.clear()
    holder: dict[str, Any] = {}

    async def run() -> None:
        async with ex.run(_cfg(), graph_id="g") as cfg:
            holder["run"] = ex.run_of(cfg)
            await graph.ainvoke({"n": 6}, cfg, durability="sync")

    task = asyncio.create_task(run())
    await assert_eventually(lambda: len(ex.published) == 6)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert holder["run"].stats.cancelled == 6
    assert ex._pending == {}
    assert any(ids is None for _, ids in ex.cancels)  # broadcast to the workers
    ex.gate.set()
    await assert_eventually(lambda: ex.dropped_replies == 6)


async def test_worker_replies_saved_writes_without_running_again() -> None:
    cp = InMemorySaver()
    graph = build().compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    ex.gate.clear()
    task = asyncio.create_task(graph.ainvoke({"n": 2}, ex.configure(_cfg(), graph_id="g")))
    await assert_eventually(lambda: len(ex.published) == 2)
    req = ex.published[0]
    # as if the task finished and its writes were saved before this delivery
    saved_cfg = {
        "configurable": {"thread_id": "t", "checkpoint_ns": "", "checkpoint_id": req.checkpoint_id}
    }
    await cp.aput_writes(saved_cfg, [("out", [999])], req.task_id)
    reply = await ex.worker._execute(req, 2)
    assert reply.skipped and reply.writes == [("out", [999])]
    ex.gate.set()
    await task


def test_wire_roundtrip_keeps_langgraph_values() -> None:
    from langchain_core.messages import AIMessage
    from langgraph.types import Interrupt

    serde = RemoteExecutor(SETTINGS, InMemorySaver()).serde
    req = TaskRequest(
        graph_id="g",
        thread_id="t",
        checkpoint_ns="",
        checkpoint_id="c",
        step=1,
        stop=10,
        task_id="id",
        task_name="work",
        task_path=["__pregel_push", 3],
        run_id="r",
        invocation_id="inv",
        reply_subject="s",
        resume=["a"],
        null_resume=None,
        context={"user": "u"},
        configurable={"k": 1},
    )
    assert decode_request(serde, encode_request(serde, req)) == req
    reply = TaskReply(
        task_id="id",
        invocation_id="inv",
        status="interrupt",
        writes=[
            ("messages", AIMessage(content="hi", id="m1")),
            ("__pregel_tasks", Send("x", {"a": 1})),
        ],
        interrupts=[Interrupt(value={"q": 1}, id="i1")],
    )
    back = decode_reply(serde, encode_reply(serde, reply))
    assert back.writes == reply.writes and back.interrupts == reply.interrupts
    with pytest.raises(ValueError):
        decode_request(serde, b"garbage")


def test_sync_invoke_runs_every_task_on_the_owner() -> None:
    cp = InMemorySaver()
    graph = build().compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    cfg = ex.configure(_cfg(), graph_id="g")
    out = graph.invoke({"n": 4}, cfg)
    assert out["total"] == 60
    assert ex.published == []
    run = ex.run_of(cfg)
    assert run is not None and run.stats.local >= 4


async def test_an_invocation_that_sent_no_task_tells_no_worker_when_it_ends() -> None:
    cp = InMemorySaver()
    graph = build().compile(checkpointer=cp)
    ex = LoopbackExecutor(graph, cp)
    async with ex.run(_cfg(), graph_id="g") as cfg:
        assert ex.run_of(cfg) is not None
    assert ex.cancels == []  # no message to every worker after each local-only run
