"""Exactly-once side effects under re-execution.

A LangGraph task (a ``ToolNode`` calling the side-effecting ``record_payment`` through
tool_svc) is killed with ``os._exit`` right after the tool returned, before the task's
writes were saved (Redis checkpointer, durability="sync"). A second process resumes the
thread: the task runs again with the same task id, hence the same idempotency key, and
gets the stored result -- the payment counter stays at 1. With idempotency off (the
control case) the same crash makes the counter 2.

This file is also the child script: ``python test_tool_exactly_once.py --help``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CRASH_EXIT = 17


# -- the child: one graph run in its own process ----------------------------------------


async def _child(ns: argparse.Namespace) -> None:
    import redis.asyncio as aioredis
    from langchain_core.messages import AIMessage, ToolMessage
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode

    from mesh_client.tools import aremote_tools, current_task_id
    from mesh_core.adapters.redis.checkpointer import MeshCheckpointer

    redis_client = aioredis.from_url(ns.redis_url)
    saver = MeshCheckpointer(redis_client, prefix=ns.prefix)
    tools = await aremote_tools(
        ns.tools.split(","), tenant_id="acme", names=["record_payment"], idempotency=ns.idempotency
    )

    def agent(state: MessagesState) -> dict[str, Any]:
        call = {
            "name": "record_payment",
            "args": {"account": ns.account, "amount_cents": 1200},
            "id": "call-pay-1",
        }
        return {"messages": [AIMessage("", tool_calls=[call])]}

    async def crash_after_tool(request: Any, execute: Any) -> Any:
        result = await execute(request)
        event = {"event": "tool_returned", "task_id": current_task_id(), "content": result.content}
        print(json.dumps(event), flush=True)
        if ns.crash:
            os._exit(CRASH_EXIT)  # the tool ran; the task's writes are not saved
        return result

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent)
    graph.add_node("tools", ToolNode(tools, awrap_tool_call=crash_after_tool))
    graph.add_edge(START, "agent")
    graph.add_edge("agent", "tools")
    graph.add_edge("tools", END)
    app = graph.compile(checkpointer=saver)
    config: Any = {"configurable": {"thread_id": ns.thread}}
    first = await saver.aget_tuple(config) is None
    out = await app.ainvoke(
        {"messages": [("user", "pay 12 EUR")]} if first else None, config, durability="sync"
    )
    messages = [m.content for m in out["messages"] if isinstance(m, ToolMessage)]
    print(json.dumps({"event": "done", "tool_messages": messages}), flush=True)
    await redis_client.aclose()


def _child_main() -> None:
    parser = argparse.ArgumentParser(description="run the payment graph once")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--tools", required=True, help="comma-separated tool_svc addresses")
    parser.add_argument("--thread", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--crash", action="store_true", help="os._exit after the tool returns")
    parser.add_argument("--no-idempotency", dest="idempotency", action="store_false")
    asyncio.run(_child(parser.parse_args()))


# -- the test -------------------------------------------------------------------------------


def _run_child(args: list[str], env: dict[str, str]) -> tuple[int, list[dict[str, Any]], str]:
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    events = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, events, proc.stderr[-3000:]


@pytest.mark.chaos
@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.parametrize("idempotency", [True, False], ids=["keyed", "control-unkeyed"])
def test_side_effect_happens_once_when_the_task_runs_again(
    infra: Any, prefix: str, tmp_path: Path, idempotency: bool
) -> None:
    import redis

    from mesh_core.adapters.redis.keys import RedisKeys
    from tests.integration.test_tool_svc import start_replicas

    replicas = start_replicas(tmp_path, infra.redis_url, prefix, n=2)
    try:
        account = f"acct-{uuid.uuid4().hex[:8]}"
        args = [
            "--redis-url",
            infra.redis_url,
            "--prefix",
            prefix,
            "--tools",
            ",".join(p.address for p in replicas),
            "--thread",
            f"thread-{uuid.uuid4().hex[:8]}",
            "--account",
            account,
        ]
        if not idempotency:
            args.append("--no-idempotency")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        counter = redis.Redis.from_url(infra.redis_url)
        key = RedisKeys(prefix).demo_payments(account)

        code, events, err = _run_child([*args, "--crash"], env)
        assert code == CRASH_EXIT, err
        (ran,) = [e for e in events if e["event"] == "tool_returned"]
        assert ran["content"].startswith("payment #1 ")
        assert int(counter.hget(key, "count") or 0) == 1  # the side effect happened

        code, events, err = _run_child(args, env)
        assert code == 0, err
        (rerun,) = [e for e in events if e["event"] == "tool_returned"]
        (done,) = [e for e in events if e["event"] == "done"]
        assert rerun["task_id"] == ran["task_id"]  # the same task ran again
        count = int(counter.hget(key, "count") or 0)
        if idempotency:
            assert count == 1
            assert rerun["content"] == ran["content"]  # the stored result, not a new payment
            assert done["tool_messages"] == [ran["content"]]
        else:
            assert count == 2  # without keys, the re-execution pays twice
            assert rerun["content"].startswith("payment #2 ")
        counter.close()
    finally:
        for p in replicas:
            p.stop()


if __name__ == "__main__":
    _child_main()
