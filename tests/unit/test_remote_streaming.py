"""Remote tasks behave like local ones in the stream and in subgraphs (loopback, no servers).

Each test runs the same graph with every eligible task on the (in-process) worker and
with none, and compares what ``astream`` yields: custom events, messages-mode chunks
and their metadata, subgraph events, interrupts and resumes inside subgraphs.
"""

from __future__ import annotations

import asyncio
import operator
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_stream_writer
from langgraph.func import entrypoint, task
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from runtime_svc.remote import RemoteTaskError
from tests.unit.test_remote_executor import LoopbackExecutor

GATES: dict[str, asyncio.Event] = {}


class Hq(TypedDict, total=False):
    teams: list[str]
    gate: str
    reports: Annotated[list[str], operator.add]


class Team(TypedDict, total=False):
    team: str
    gate: str
    notes: Annotated[list[str], operator.add]
    reports: Annotated[list[str], operator.add]


def _fake(text: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=text)]))


def _hq(team_node: Any) -> Any:
    def dispatch(state: Hq) -> list[Send]:
        return [
            Send("team", {"team": t, "gate": state.get("gate", "")}) for t in state.get("teams", [])
        ]

    b = StateGraph(Hq)
    b.add_node("team", team_node)
    b.add_conditional_edges(START, dispatch, ["team"])
    b.add_edge("team", END)
    return b.compile()


def _team_subgraph() -> Any:
    """team -> (brief, desk subgraph with an interrupt, report): two levels down."""

    async def brief(state: Team) -> dict[str, Any]:
        get_stream_writer()({"brief": state.get("team")})
        msg = await _fake(f"brief for {state.get('team')}").ainvoke("go")
        return {"notes": [str(msg.content)]}

    def desk_ask(state: Team) -> dict[str, Any]:
        answer = interrupt({"team": state.get("team")})
        return {"notes": [f"desk:{answer}"]}

    desk_b = StateGraph(Team)
    desk_b.add_node("desk_ask", desk_ask)
    desk_b.add_edge(START, "desk_ask")

    def report(state: Team) -> dict[str, Any]:
        return {"reports": [f"{state.get('team')}:{'+'.join(state.get('notes', []))}"]}

    b = StateGraph(Team)
    b.add_node("brief", brief)
    b.add_node("desk", desk_b.compile())
    b.add_node("report", report)
    b.add_edge(START, "brief")
    b.add_edge("brief", "desk")
    b.add_edge("desk", "report")
    return b.compile()


def _ns(ns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(part.split(":", 1)[0] for part in ns)


def _normalize(item: tuple[Any, ...]) -> Any:
    ns, mode, chunk = item
    if mode == "messages":
        msg, meta = chunk
        keep = ("langgraph_node", "langgraph_step", "langgraph_triggers")
        return (_ns(ns), mode, str(msg.content), sorted(meta), [meta[k] for k in keep])
    if isinstance(chunk, dict) and "__interrupt__" in chunk:  # interrupt ids differ
        chunk = {**chunk, "__interrupt__": sorted(str(i.value) for i in chunk["__interrupt__"])}
    return (_ns(ns), mode, repr(chunk))


async def _run(graph: Any, remote: str, legs: list[Any], **kw: Any) -> tuple[Any, Any]:
    cp = InMemorySaver()
    g = graph.copy(update={"checkpointer": cp})
    ex = LoopbackExecutor(g, cp)
    cfg0 = {"configurable": {"thread_id": str(uuid.uuid4())}}
    out: list[list[Any]] = []
    for leg in legs:
        inp = leg(await g.aget_state(cfg0)) if callable(leg) else leg
        async with ex.run(cfg0, graph_id="g", remote=remote) as cfg:
            events = [
                _normalize(e)
                async for e in g.astream(inp, cfg, durability="sync", subgraphs=True, **kw)
            ]
        out.append(sorted(events, key=repr))
    state = await g.aget_state(cfg0)
    return (out, state.values), ex


def _resume_map(state: Any) -> Command[Any]:
    return Command(resume={i.id: f"ok-{i.value['team']}" for i in state.interrupts})


async def test_nested_subgraph_interrupts_resume_with_a_map_and_stream_as_in_process() -> None:
    team = _team_subgraph()

    async def team_node(state: Team) -> dict[str, Any]:
        out = await team.ainvoke(state)
        return {"reports": out.get("reports", [])}

    graph = _hq(team_node)
    legs = [{"teams": ["a", "b"]}, _resume_map]
    modes = ["updates", "values", "custom", "messages"]
    local, _ = await _run(graph, "none", legs, stream_mode=modes)
    remote, ex = await _run(graph, "send", legs, stream_mode=modes)
    assert len(ex.published) == 4  # two teams, two legs: all of them remote
    assert remote == local
    assert sorted(r.rsplit("+", 1)[1] for r in local[1]["reports"]) == ["desk:ok-a", "desk:ok-b"]


async def test_custom_events_reach_the_stream_while_the_task_runs() -> None:
    async def team_node(state: Team) -> dict[str, Any]:
        get_stream_writer()({"started": state["team"]})
        await GATES[state["gate"]].wait()
        return {"reports": [state["team"]]}

    graph = _hq(team_node)
    cp = InMemorySaver()
    g = graph.copy(update={"checkpointer": cp})
    ex = LoopbackExecutor(g, cp)
    gate = uuid.uuid4().hex
    GATES[gate] = asyncio.Event()
    cfg0 = {"configurable": {"thread_id": "t"}}
    seen: list[Any] = []
    try:
        async with ex.run(cfg0, graph_id="g") as cfg:
            async for mode, chunk in g.astream(
                {"teams": ["x"], "gate": gate}, cfg, stream_mode=["custom", "values"]
            ):
                seen.append((mode, chunk))
                if mode == "custom":
                    # the task is still waiting on the worker: the event came as it happened
                    assert not GATES[gate].is_set() and ex.inflight == 1
                    GATES[gate].set()
    finally:
        GATES.pop(gate, None)
    assert ("custom", {"started": "x"}) in seen
    assert seen[-1][1]["reports"] == ["x"]


def _chat_graph() -> Any:
    class Chat(TypedDict, total=False):
        topic: str
        lines: Annotated[list[str], operator.add]

    async def poet(state: Chat) -> dict[str, Any]:
        msg = await _fake(f"roses about {state.get('topic')} are red").ainvoke("go")
        return {"lines": [str(msg.content)]}

    def critic(state: Chat) -> dict[str, Any]:  # sync: runs in a worker thread
        get_stream_writer()({"critic": "reading"})
        msg = _fake(f"the {state.get('topic')} poem is fine").invoke("go")
        return {"lines": [str(msg.content)]}

    b = StateGraph(Chat)
    b.add_node("poet", poet)
    b.add_node("critic", critic)
    b.add_edge(START, "poet")
    b.add_edge(START, "critic")
    b.add_edge(["poet", "critic"], END)
    return b.compile()


@pytest.mark.parametrize("subgraphs", [False, True])
async def test_message_tokens_of_remote_nodes_stream_as_in_process(subgraphs: bool) -> None:
    graph = _chat_graph()
    modes = ["messages", "custom", "updates"]
    local, _ = await _run(graph, "none", [{"topic": "cats"}], stream_mode=modes)
    remote, ex = await _run(graph, "all", [{"topic": "cats"}], stream_mode=modes)
    assert {r.task_name for r in ex.published} == {"poet", "critic"}
    assert remote == local
    tokens = [e for e in remote[0][0] if e[1] == "messages"]
    assert len(tokens) > 6 and {e[4][0] for e in tokens} == {"poet", "critic"}


CALLS: list[str] = []


@task
async def square(x: int) -> int:
    CALLS.append(f"square{x}")
    get_stream_writer()({"square": x})
    return x * x


@task
def review(text: str) -> str:
    CALLS.append("review")
    return str(interrupt({"review": text}))


@entrypoint()
async def flow(nums: list[int]) -> dict[str, Any]:
    squares = [await f for f in [square(n) for n in nums]]
    return {"squares": squares, "total": sum(squares)}


@entrypoint()
def approve(topic: str) -> dict[str, Any]:
    note = review(f"draft about {topic}").result()
    decision = interrupt({"note": note})
    return {"note": note, "decision": decision}


async def test_task_calls_of_a_remote_entrypoint_run_in_the_owners_loop() -> None:
    modes = ["custom", "updates", "values"]
    CALLS.clear()
    local, _ = await _run(flow, "none", [[1, 2, 3]], stream_mode=modes)
    CALLS.clear()
    remote, ex = await _run(flow, "all", [[1, 2, 3]], stream_mode=modes)
    assert [r.task_name for r in ex.published] == ["flow"]  # the entrypoint ran remotely
    assert sorted(CALLS) == ["square1", "square2", "square3"]  # each call ran once
    assert remote == local


async def test_task_call_interrupts_and_resumes_from_the_saved_result() -> None:
    modes = ["updates", "values"]
    legs = ["mesh", Command(resume="looks good"), Command(resume="ship it")]
    CALLS.clear()
    local, _ = await _run(approve, "none", legs, stream_mode=modes)
    local_calls = list(CALLS)
    CALLS.clear()
    remote, ex = await _run(approve, "all", legs, stream_mode=modes)
    assert {r.task_name for r in ex.published} == {"approve"}
    assert remote == local
    # interrupted, resumed (runs again, answered), then replayed from its saved result
    assert CALLS == local_calls == ["review", "review"]
    assert remote[1]["decision"] == "ship it"


async def test_a_nested_task_called_in_a_remote_node_fails_clearly() -> None:
    @task
    def double(x: int) -> int:
        return 2 * x

    class S(TypedDict, total=False):
        x: int
        y: int

    def node(state: S) -> dict[str, Any]:
        return {"x": double(state["x"]).result()}

    def other(state: S) -> dict[str, Any]:
        return {"y": 1}

    b = StateGraph(S)
    b.add_node("node", node)
    b.add_node("other", other)  # two tasks in the step: the runner submits both
    b.add_edge(START, "node")
    b.add_edge(START, "other")
    cp = InMemorySaver()
    g = b.compile(checkpointer=cp)
    ex = LoopbackExecutor(g, cp)
    async with ex.run({"configurable": {"thread_id": "n"}}, graph_id="g", remote="all") as cfg:
        with pytest.raises(RemoteTaskError, match="module-level"):
            await g.ainvoke({"x": 3}, cfg)
    assert sorted(r.task_name for r in ex.published) == ["node", "other"]


async def test_command_goto_and_update_at_an_interrupt_rebuild_on_the_worker() -> None:
    class Ask(TypedDict, total=False):
        answers: Annotated[list[Any], operator.add]
        note: str
        result: str

    def ask(state: Ask) -> dict[str, Any]:
        return {"answers": [interrupt("who?")]}

    def finish(state: Ask) -> dict[str, Any]:
        return {"result": f"{state.get('note')}:{state.get('answers')}"}

    b = StateGraph(Ask)
    b.add_node("ask", ask)
    b.add_node("finish", finish)
    b.add_edge(START, "ask")
    b.add_edge("ask", "finish")
    graph = b.compile()
    legs = [{"answers": []}, Command(goto="finish", update={"note": "n"}), Command(resume="ann")]
    local, _ = await _run(graph, "none", legs, stream_mode=["updates", "values"])
    remote, ex = await _run(graph, "all", legs, stream_mode=["updates", "values"])
    finish = [r for r in ex.published if r.task_name == "finish"]
    # the owner sent the Command's writes along (found through the runner's call hook)
    assert finish and ("note", "n") in (finish[0].null_writes or [])
    assert remote == local
