"""Graphs used by the benchmarks (imported by runtime processes too)."""

from __future__ import annotations

from typing import Annotated, Any

from langchain_core.messages import AnyMessage
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
