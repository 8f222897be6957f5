"""Graphs the end-to-end tests run through the mesh (imported by runtime processes)."""

from __future__ import annotations

import asyncio
import operator
import os
from typing import Annotated, Any

import redis.asyncio as aioredis
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send, interrupt
from typing_extensions import TypedDict


class StepsState(TypedDict, total=False):
    step: int
    done: bool
    log: Annotated[list[str], operator.add]


async def _count(config: RunnableConfig, node: str) -> None:
    """Count executions per node in Redis (key from the run's configurable)."""
    conf = config.get("configurable", {})
    key = conf.get("count_key")
    if key:
        r = aioredis.from_url(os.environ["LGMESH_REDIS_URL"])
        try:
            await r.hincrby(key, node, 1)
        finally:
            await r.aclose()


def _steps_builder() -> StateGraph:
    async def work(state: StepsState, config: RunnableConfig) -> dict[str, Any]:
        step = state.get("step", 0) + 1
        await _count(config, f"work{step}")
        delay = float(config.get("configurable", {}).get("delay", 0))
        if delay:
            await asyncio.sleep(delay)
        get_stream_writer()({"progress": step, "pid": os.getpid()})
        return {
            "step": step,
            "done": step >= int(config.get("configurable", {}).get("steps", 5)),
            "log": [f"s{step}@{os.getpid()}"],
        }

    def route(state: StepsState) -> str:
        return END if state.get("done") else "work"

    b = StateGraph(StepsState)
    b.add_node("work", work)
    b.add_edge(START, "work")
    b.add_conditional_edges("work", route, ["work", END])
    return b


steps = _steps_builder().compile()


class ApprovalState(TypedDict, total=False):
    request: str
    approved: bool
    result: str


def _approval_builder() -> StateGraph:
    def ask(state: ApprovalState) -> dict[str, Any]:
        answer = interrupt({"question": f"approve {state.get('request', '')}?"})
        return {"approved": bool(answer)}

    def finish(state: ApprovalState) -> dict[str, Any]:
        return {"result": "done" if state.get("approved") else "rejected"}

    b = StateGraph(ApprovalState)
    b.add_node("ask", ask)
    b.add_node("finish", finish)
    b.add_edge(START, "ask")
    b.add_edge("ask", "finish")
    b.add_edge("finish", END)
    return b


approval = _approval_builder().compile()


class ChatState(TypedDict, total=False):
    topic: str
    answer: str


def make_chat() -> Any:
    """A builder function (not a compiled graph): the registry calls it."""

    async def talk(state: ChatState) -> dict[str, Any]:
        model = GenericFakeChatModel(
            messages=iter([AIMessage(content=f"tokens about {state.get('topic', 'x')} here")])
        )
        msg = await model.ainvoke("hi")
        return {"answer": str(msg.content)}

    b = StateGraph(ChatState)
    b.add_node("talk", talk)
    b.add_edge(START, "talk")
    b.add_edge("talk", END)
    return b.compile()


class FanState(TypedDict, total=False):
    n: int
    results: Annotated[list[int], operator.add]
    total: int


def _fan_builder() -> StateGraph:
    def spread(state: FanState) -> list[Send]:
        return [Send("job", {"i": i}) for i in range(state.get("n", 8))]

    async def job(task: dict[str, int], config: RunnableConfig) -> dict[str, Any]:
        await _count(config, f"job{task['i']}")
        await asyncio.sleep(float(config.get("configurable", {}).get("delay", 0)))
        return {"results": [task["i"] * task["i"]]}

    def reduce(state: FanState) -> dict[str, Any]:
        return {"total": sum(state.get("results", []))}

    b = StateGraph(FanState)
    b.add_node("job", job)
    b.add_node("reduce", reduce)
    b.add_conditional_edges(START, spread, ["job"])
    b.add_edge("job", "reduce")
    b.add_edge("reduce", END)
    return b


fan = _fan_builder().compile()


class BoomState(TypedDict, total=False):
    item: str
    seen: Annotated[list[str], operator.add]


def _boom_builder() -> StateGraph:
    """``prep`` then ``explode``, which raises ValueError unless the item is "ok"."""

    def prep(state: BoomState) -> dict[str, Any]:
        return {"seen": [f"prep:{state.get('item', '')}"]}

    def explode(state: BoomState) -> dict[str, Any]:
        if state.get("item") != "ok":
            raise ValueError(f"cannot handle {state.get('item')!r}")
        return {"seen": ["explode"]}

    b = StateGraph(BoomState)
    b.add_node("prep", prep)
    b.add_node("explode", explode)
    b.add_edge(START, "prep")
    b.add_edge("prep", "explode")
    b.add_edge("explode", END)
    return b


boom = _boom_builder().compile()
