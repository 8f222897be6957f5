"""The demo graphs that ``lgmesh dev`` serves.

``demo``: a planner asks the model (LLM gateway, scripted provider) for topics, fans out
one ``Send`` task per topic to researchers that call the ``search`` tool (tool service)
and the model, and a writer merges their findings, streaming its tokens. Every node
reports through the custom stream which process ran it. With ``"review": true`` in the
input, the run stops at an ``interrupt()`` after planning and asks for approval: resume
with ``true`` (research the topics), ``false`` (write without research) or a list of
topics to research instead.

``agent``: a model + tools loop (the shape of LangGraph's prebuilt ReAct agent) over
``MeshChatModel`` and the tool service's tools.

``fanout``: a plain map-reduce over ``Send`` (no model), for trying the worker role.

The LLM gateway and tool service addresses come from the run config
(``lgmesh_llm_target``, ``lgmesh_tools_target``), which the runtime fills in.
"""

from __future__ import annotations

import operator
import os
import socket
from typing import Annotated, Any

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Send, interrupt
from typing_extensions import TypedDict

from mesh_client.llm import MeshChatModel
from mesh_client.tools import aremote_tools

__all__ = ["agent", "demo", "fanout"]

MODEL = "mesh-demo"
TOOLS_KEY = "lgmesh_tools_target"
_tool_cache: dict[str, list[BaseTool]] = {}


def _who() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _tenant(config: RunnableConfig) -> str:
    return str((config.get("metadata") or {}).get("lgmesh_tenant", "default"))


def _model(config: RunnableConfig) -> MeshChatModel:
    return MeshChatModel(model=MODEL, tenant=_tenant(config))


async def _tools(config: RunnableConfig, names: list[str] | None = None) -> list[BaseTool]:
    address = (config.get("configurable") or {}).get(TOOLS_KEY)
    if not address:
        raise RuntimeError("no tool service configured (configurable.lgmesh_tools_target)")
    key = f"{address}|{','.join(names or [])}"
    if key not in _tool_cache:
        _tool_cache[key] = await aremote_tools(address, names=names, tenant_id=_tenant(config))
    return _tool_cache[key]


async def _model_tool_loop(
    messages: list[AnyMessage], config: RunnableConfig, tools: list[BaseTool], max_turns: int = 4
) -> tuple[AIMessage, list[AnyMessage]]:
    by_name = {t.name: t for t in tools}
    model = _model(config).bind_tools(tools)
    for _ in range(max_turns):
        ai = await model.ainvoke(messages, config)
        assert isinstance(ai, AIMessage)
        messages = [*messages, ai]
        if not ai.tool_calls:
            return ai, messages
        for call in ai.tool_calls:
            result = await by_name[call["name"]].ainvoke({**call, "type": "tool_call"}, config)
            messages.append(
                result
                if isinstance(result, ToolMessage)
                else ToolMessage(str(result), tool_call_id=call["id"])
            )
    raise RuntimeError(f"no answer after {max_turns} model turns")


# -- demo: planner -> Send(researcher) x N -> writer -------------------------------------
class DemoState(TypedDict, total=False):
    question: str
    review: bool
    topics: list[str]
    findings: Annotated[list[str], operator.add]
    report: str


class ResearchTask(TypedDict):
    question: str
    topic: str


async def planner(state: DemoState, config: RunnableConfig) -> dict[str, Any]:
    question = state.get("question") or "how a LangGraph mesh scales"
    msg = await _model(config).ainvoke(
        [
            SystemMessage("You are the planner: list the topics to research, one per line."),
            HumanMessage(question),
        ],
        config,
    )
    topics = [
        line.split(". ", 1)[-1].strip() for line in str(msg.content).splitlines() if line.strip()
    ]
    get_stream_writer()({"node": "planner", "ran_on": _who(), "topics": topics})
    return {"question": question, "topics": topics}


def fan_out(state: DemoState) -> list[Send] | str:
    topics = state.get("topics", [])
    if not topics:
        return "writer"
    return [Send("researcher", {"question": state["question"], "topic": t}) for t in topics]


def after_planning(state: DemoState) -> list[Send] | str:
    return "review" if state.get("review") else fan_out(state)


def review(state: DemoState) -> dict[str, Any]:
    """Human in the loop: the run stops here until a client resumes it."""
    topics = state.get("topics", [])
    answer = interrupt({"question": "Research these topics?", "topics": topics})
    if isinstance(answer, list):
        topics = [str(t) for t in answer]
    elif not answer:
        topics = []
    get_stream_writer()({"node": "review", "ran_on": _who(), "topics": topics})
    return {"topics": topics}


async def researcher(task: ResearchTask, config: RunnableConfig) -> dict[str, Any]:
    tools = await _tools(config, ["search"])
    ai, _ = await _model_tool_loop(
        [SystemMessage("You are a researcher: search, then answer."), HumanMessage(task["topic"])],
        config,
        tools,
    )
    get_stream_writer()({"node": "researcher", "topic": task["topic"], "ran_on": _who()})
    return {"findings": [f"{task['topic']}: {ai.content}"]}


async def writer(state: DemoState, config: RunnableConfig) -> dict[str, Any]:
    notes = "\n".join(sorted(state.get("findings", [])))
    chunks = []
    async for chunk in _model(config).astream(
        [
            SystemMessage("You are the writer: merge the notes into one report."),
            HumanMessage(notes),
        ],
        config,
    ):
        chunks.append(str(chunk.content))
    get_stream_writer()({"node": "writer", "ran_on": _who()})
    return {"report": "".join(chunks)}


def _demo() -> Any:
    b = StateGraph(DemoState)
    b.add_node("planner", planner)
    b.add_node("review", review)
    b.add_node("researcher", researcher)
    b.add_node("writer", writer)
    b.add_edge(START, "planner")
    b.add_conditional_edges("planner", after_planning, ["review", "researcher", "writer"])
    b.add_conditional_edges("review", fan_out, ["researcher", "writer"])
    b.add_edge("researcher", "writer")
    b.add_edge("writer", END)
    return b.compile()


demo = _demo()


# -- agent: model + tools loop -------------------------------------------------------------
class AgentState(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


async def call_model(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
    tools = await _tools(config)
    model = _model(config).bind_tools(tools)
    return {"messages": [await model.ainvoke(state["messages"], config)]}


async def call_tools(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
    by_name = {t.name: t for t in await _tools(config)}
    last = state["messages"][-1]
    assert isinstance(last, AIMessage)
    out = []
    for call in last.tool_calls:
        result = await by_name[call["name"]].ainvoke({**call, "type": "tool_call"}, config)
        out.append(
            result
            if isinstance(result, ToolMessage)
            else ToolMessage(str(result), tool_call_id=call["id"])
        )
    return {"messages": out}


def route(state: AgentState) -> str:
    last = state["messages"][-1]
    return "tools" if isinstance(last, AIMessage) and last.tool_calls else END


def _agent() -> Any:
    b = StateGraph(AgentState)
    b.add_node("model", call_model)
    b.add_node("tools", call_tools)
    b.add_edge(START, "model")
    b.add_conditional_edges("model", route, ["tools", END])
    b.add_edge("tools", "model")
    return b.compile()


agent = _agent()


# -- fanout: map-reduce without a model ----------------------------------------------------
class FanoutState(TypedDict, total=False):
    n: int
    squares: Annotated[list[int], operator.add]
    total: int


def _spread(state: FanoutState) -> list[Send]:
    return [Send("square", {"i": i}) for i in range(state.get("n", 10))]


def square(task: dict[str, int]) -> dict[str, Any]:
    return {"squares": [task["i"] * task["i"]]}


def reduce(state: FanoutState) -> dict[str, Any]:
    return {"total": sum(state.get("squares", []))}


def _fanout() -> Any:
    b = StateGraph(FanoutState)
    b.add_node("square", square)
    b.add_node("reduce", reduce)
    b.add_conditional_edges(START, _spread, ["square"])
    b.add_edge("square", "reduce")
    b.add_edge("reduce", END)
    return b.compile()


fanout = _fanout()
