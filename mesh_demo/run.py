"""The terminal side of the demo: stream ``demo`` through the gateway and show it.

The run asks for a review after planning (an ``interrupt()``); the demo answers it the
way the README's resume example does, and the second run researches and writes.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from mesh_client import MeshClient, StreamPart

QUESTION = "how a LangGraph mesh scales"
INDENT = "   "


def _out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


class _Printer:
    """One line per event worth seeing; the writer's tokens as they stream."""

    def __init__(self, names: dict[int, str] | None) -> None:
        self.names = names or {}
        self.writing = False
        self.status = ""
        self.interrupts: list[dict[str, Any]] = []

    def where(self, ran_on: str) -> str:
        pid = ran_on.rpartition(":")[2]
        name = self.names.get(int(pid)) if pid.isdigit() else None
        return f"{name}, pid {pid}" if name else ran_on

    def line(self, seq: int, text: str) -> None:
        if self.writing:
            _out()
            self.writing = False
        _out(f"{INDENT}{'#' + str(seq):<6}{text}")

    def show(self, part: StreamPart) -> None:
        if part.event == "lifecycle":
            lc = part.lifecycle
            self.status = lc["status"]
            if lc["kind"] == "ended":
                self.interrupts = list(lc.get("interrupts") or [])
                self.line(part.seq, f"run ended: {lc['status']} (on {lc['runtime_id']})")
            else:
                self.line(part.seq, f"run {lc['kind']} on {lc['runtime_id']}")
        elif part.event == "custom":
            data = part.data
            who = self.where(str(data.get("ran_on", "?")))
            node = data.get("node")
            if node == "planner":
                self.line(part.seq, f"planner chose {len(data['topics'])} topics (ran on {who})")
            elif node == "review":
                self.line(part.seq, f"review: research {len(data['topics'])} topics (ran on {who})")
            elif node == "researcher":
                self.line(part.seq, f"researcher finished {data['topic']!r} (ran on {who})")
            else:
                self.line(part.seq, f"{node} done (ran on {who})")
        elif part.event == "messages":
            msg, meta = part.data
            if meta.get("langgraph_node") == "writer" and msg.get("content"):
                if not self.writing:
                    _out(f"{INDENT}{'':<6}writer: ", end="")
                    self.writing = True
                _out(str(msg["content"]).replace("\n", "\n" + INDENT + " " * 14), end="")


async def run_demo(
    address: str, api_key: str, question: str = QUESTION, names: dict[int, str] | None = None
) -> int:
    """Stream ``demo`` with a review, answer it, stream the rest; ``names`` maps process
    ids to service names for display."""
    client = MeshClient(address, api_key)
    show = _Printer(names)
    modes = ["updates", "custom", "messages"]
    try:
        thread = await client.threads.create(metadata={"demo": True})
        tid = thread["thread_id"]
        _out(f"\n== demo: thread {tid}, question {question!r}")
        _out(f"{INDENT}(#n: the event's sequence number in its run's stream; a client that")
        _out(f"{INDENT} lost the stream joins again after it with JoinRun after_seq=n)")
        async for part in client.runs.stream(
            tid, "demo", input={"question": question, "review": True}, stream_mode=modes
        ):
            show.show(part)
        if show.status == "interrupted" and show.interrupts:
            asked = show.interrupts[0].get("value") or {}
            _out(f"== the run asks: {asked.get('question')} {asked.get('topics')}")
            _out('== answering {"resume": true}, as the README\'s resume example does')
            async for part in client.runs.stream(
                tid, "demo", command={"resume": True}, stream_mode=modes
            ):
                show.show(part)
        if show.writing:
            _out()
        state = await client.threads.get_state(tid)
        findings = len((state["values"] or {}).get("findings", []))
        _out(f"== {findings} findings merged; run {show.status}")
        return 0 if show.status == "success" else 1
    finally:
        await client.close()


def main(address: str, api_key: str, names: dict[int, str] | None = None) -> int:
    return asyncio.run(run_demo(address, api_key, names=names))
