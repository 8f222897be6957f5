"""The terminal side of the demo: stream one run of ``demo`` through the gateway and show it."""

from __future__ import annotations

import asyncio
import sys

from mesh_client import MeshClient

QUESTION = "how a LangGraph mesh scales"


def _out(text: str = "", end: str = "\n") -> None:
    sys.stdout.write(text + end)
    sys.stdout.flush()


async def run_demo(
    address: str, api_key: str, question: str = QUESTION, names: dict[int, str] | None = None
) -> int:
    """Stream one run of ``demo``; ``names`` maps process ids to service names for display."""
    client = MeshClient(address, api_key)

    def where(ran_on: str) -> str:
        pid = ran_on.rpartition(":")[2]
        name = (names or {}).get(int(pid)) if pid.isdigit() else None
        return f"{name} (pid {pid})" if name else ran_on

    try:
        thread = await client.threads.create(metadata={"demo": True})
        _out(f"\n== demo: thread {thread['thread_id']}, question: {question!r}")
        status = ""
        writing = False
        async for part in client.runs.stream(
            thread["thread_id"],
            "demo",
            input={"question": question},
            stream_mode=["updates", "custom", "messages"],
        ):
            if part.event == "lifecycle":
                lc = part.lifecycle
                if writing:
                    _out()
                    writing = False
                _out(f"   [{part.seq:>3}] run {lc['kind']} ({lc['status']}) on {lc['runtime_id']}")
                status = lc["status"]
            elif part.event == "custom":
                who = where(str(part.data.get("ran_on", "?")))
                if part.data.get("node") == "planner":
                    _out(
                        f"   [{part.seq:>3}] planner chose {len(part.data['topics'])} topics (ran on {who})"
                    )
                elif part.data.get("node") == "researcher":
                    _out(
                        f"   [{part.seq:>3}] researcher finished {part.data['topic']!r} (ran on {who})"
                    )
                else:
                    if writing:
                        _out()
                        writing = False
                    _out(f"   [{part.seq:>3}] {part.data.get('node')} done (ran on {who})")
            elif part.event == "messages":
                msg, meta = part.data
                if meta.get("langgraph_node") == "writer" and msg.get("content"):
                    if not writing:
                        _out("   writer: ", end="")
                        writing = True
                    _out(str(msg["content"]).replace("\n", " "), end="")
        state = await client.threads.get_state(thread["thread_id"])
        _out("\n== report\n" + str((state["values"] or {}).get("report", "")))
        _out(f"== {len((state['values'] or {}).get('findings', []))} findings merged; run {status}")
        return 0 if status == "success" else 1
    finally:
        await client.close()


def main(address: str, api_key: str, names: dict[int, str] | None = None) -> int:
    return asyncio.run(run_demo(address, api_key, names=names))
