"""The LangGraph internals remote task streaming and subgraph support rely on.

LangGraph is pinned (see ``tests/contract``); these fail loudly when an upgrade moves
one of the private names ``runtime_svc.remote`` uses to make remote tasks stream and
run subgraphs like local ones.
"""

from __future__ import annotations

import inspect

import pytest
from langgraph._internal import _constants as c


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONFIG_KEY_STREAM", "__pregel_stream"),
        ("CONFIG_KEY_RESUME_MAP", "__pregel_resume_map"),
        ("CONFIG_KEY_RESUMING", "__pregel_resuming"),
        ("CONFIG_KEY_DURABILITY", "__pregel_durability"),
        ("CONFIG_KEY_CALL", "__pregel_call"),
        ("PREVIOUS", "__previous__"),
        ("INPUT", "__input__"),
    ],
)
def test_constants(name: str, value: str) -> None:
    assert getattr(c, name) == value


def test_stream_messages_handler_shape() -> None:
    from langgraph.pregel._messages import StreamMessagesHandler

    h = StreamMessagesHandler(print, True, parent_ns=("a",))
    assert (h.stream, h.subgraphs, h.parent_ns, h.seen) == (print, True, ("a",), set())


def test_stream_protocol_and_apply_writes() -> None:
    from langgraph.pregel._algo import PregelTaskWrites, apply_writes
    from langgraph.pregel.protocol import StreamProtocol

    assert StreamProtocol(print, {"values"}).modes == {"values"}
    assert list(inspect.signature(apply_writes).parameters) == [
        "checkpoint",
        "channels",
        "tasks",
        "get_next_version",
        "trigger_to_nodes",
    ]
    assert PregelTaskWrites._fields == ("path", "name", "writes", "triggers")


def test_runner_hands_tasks_the_loops_accept_push() -> None:
    # _owner._null_writes finds the loop through the call hook's schedule_task
    from langgraph.pregel import _runner

    src = inspect.getsource(_runner.PregelRunner.atick)
    assert "schedule_task=schedule_task" in src and "CONFIG_KEY_CALL: partial(" in src
    from langgraph.pregel._loop import AsyncPregelLoop

    assert hasattr(AsyncPregelLoop, "aaccept_push")


def test_scratchpad_null_resume_closure() -> None:
    # _rebuild.null_resume_left reads what get_null_resume closes over
    from langgraph._internal._constants import NULL_TASK_ID, RESUME
    from langgraph.pregel._algo import _scratchpad

    from runtime_svc.remote._rebuild import null_resume_left

    pending = [(NULL_TASK_ID, RESUME, "v")]
    sp = _scratchpad(None, pending, "t", "ns", None, 1, 2)
    assert {"null_resume_write", "pending_writes", "parent_scratchpad"} <= set(
        sp.get_null_resume.__code__.co_freevars
    )
    assert null_resume_left(sp) is True
    assert sp.get_null_resume(True) == "v"
    assert null_resume_left(sp) is False
    assert sp.get_null_resume(False) == "v"  # why the closure is read instead


def test_task_function_shape() -> None:
    from langgraph.func import _TaskFunction, task

    @task
    def f(x: int) -> int:
        return x

    assert isinstance(f, _TaskFunction)
    assert (f.func.__name__, f.retry_policy, f.cache_policy, f.timeout) == ("f", (), None, None)
