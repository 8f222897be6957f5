"""Graphs used by the benchmarks (imported by runtime processes too)."""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
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
