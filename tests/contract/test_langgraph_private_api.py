"""Fails loudly when a LangGraph upgrade moves a private API the remote executor uses.

runtime_svc.remote plugs into LangGraph through private hooks (the runner submit
key, task rebuilding, the retry wrapper). LangGraph is pinned to one version; this
test is what to look at first when bumping it.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import version

import pytest

PINNED = "1.2.22"


def test_langgraph_is_the_pinned_version() -> None:
    assert version("langgraph") == PINNED, (
        "langgraph changed version: re-check every private API below, then update PINNED"
    )


@pytest.mark.parametrize(
    ("module", "name", "value"),
    [
        ("langgraph._internal._constants", "CONFIG_KEY_RUNNER_SUBMIT", "__pregel_runner_submit"),
        ("langgraph._internal._constants", "CONFIG_KEY_SCRATCHPAD", "__pregel_scratchpad"),
        ("langgraph._internal._constants", "CONFIG_KEY_RUNTIME", "__pregel_runtime"),
        ("langgraph._internal._constants", "CONFIG_KEY_CHECKPOINT_MAP", "checkpoint_map"),
        ("langgraph._internal._constants", "CONFIG_KEY_CHECKPOINT_NS", "checkpoint_ns"),
        ("langgraph._internal._constants", "CONFIG_KEY_CHECKPOINT_ID", "checkpoint_id"),
        ("langgraph._internal._constants", "CONFIG_KEY_THREAD_ID", "thread_id"),
        ("langgraph._internal._constants", "CONF", "configurable"),
        ("langgraph._internal._constants", "PUSH", "__pregel_push"),
        ("langgraph._internal._constants", "PULL", "__pregel_pull"),
        ("langgraph._internal._constants", "RESUME", "__resume__"),
        ("langgraph._internal._constants", "NS_SEP", "|"),
        ("langgraph._internal._constants", "NULL_TASK_ID", "00000000-0000-0000-0000-000000000000"),
    ],
)
def test_constants(module: str, name: str, value: str) -> None:
    assert getattr(importlib.import_module(module), name) == value


def _params(fn: object) -> list[str]:
    return list(inspect.signature(fn).parameters)  # type: ignore[arg-type]


def test_prepare_single_task_signature() -> None:
    from langgraph.pregel._algo import checkpoint_null_version, prepare_single_task

    assert _params(prepare_single_task)[:2] == ["task_path", "task_id_checksum"]
    required = {
        "checkpoint",
        "checkpoint_id_bytes",
        "checkpoint_null_version",
        "pending_writes",
        "processes",
        "channels",
        "managed",
        "config",
        "step",
        "stop",
        "for_execution",
        "store",
        "checkpointer",
        "manager",
        "retry_policy",
        "cache_policy",
    }
    assert required <= set(_params(prepare_single_task))
    assert _params(checkpoint_null_version) == ["checkpoint"]


def test_channels_from_checkpoint_signature() -> None:
    from langgraph.pregel._checkpoint import achannels_from_checkpoint

    assert inspect.iscoroutinefunction(achannels_from_checkpoint)
    assert _params(achannels_from_checkpoint) == ["specs", "checkpoint", "saver", "config"]


def test_output_of_a_checkpoint_reads_as_the_values_stream() -> None:
    """A run's output is read back from its checkpoint with the channels the ``values``
    stream reads (``stream_channels_asis``, LangGraph's default output keys)."""
    from langgraph.pregel import main
    from langgraph.pregel._io import read_channels

    assert _params(read_channels)[:2] == ["channels", "select"]
    assert "output_keys = self.stream_channels_asis" in inspect.getsource(main.Pregel._defaults)


def test_retry_wrapper_signature() -> None:
    from langgraph.pregel._retry import arun_with_retry, run_with_retry

    assert inspect.iscoroutinefunction(arun_with_retry)
    assert _params(arun_with_retry)[:2] == ["task", "retry_policy"]
    assert _params(run_with_retry)[:2] == ["task", "retry_policy"]


def test_task_status_reader() -> None:
    from langgraph.pregel._task_status import read_task_statuses

    status = read_task_statuses([("t1", "x", 1), ("t2", "__interrupt__", [])])
    assert status["t1"].output == (("x", 1),)
    assert status["t2"].output == ()


def test_scratchpad_fields() -> None:
    from langgraph._internal._scratchpad import PregelScratchpad

    fields = set(inspect.signature(PregelScratchpad).parameters)
    assert {"step", "stop", "resume", "get_null_resume"} <= fields


def test_runner_takes_submit_from_config_and_submits_with_retry_wrapper() -> None:
    """The runner must still read our submitter from the config and submit
    (arun_with_retry, task, retry_policy, ...) through it."""
    from langgraph.pregel import _runner, main

    assert "CONFIG_KEY_RUNNER_SUBMIT" in inspect.getsource(main)
    src = inspect.getsource(_runner.PregelRunner.atick)
    assert "self.submit()(" in src and "arun_with_retry" in src
    assert "__cancel_on_exit__" in src and "__reraise_on_exit__" in src


def test_executable_task_fields() -> None:
    import dataclasses

    from langgraph.types import PregelExecutableTask

    fields = {f.name for f in dataclasses.fields(PregelExecutableTask)}
    assert {"name", "input", "proc", "writes", "config", "id", "path", "retry_policy"} <= fields


def test_runtime_fields() -> None:
    from langgraph.runtime import Runtime

    params = set(inspect.signature(Runtime).parameters)
    assert {"context", "store", "stream_writer"} <= params


def test_graph_interrupt_carries_interrupts() -> None:
    from langgraph.errors import GraphInterrupt
    from langgraph.types import Interrupt

    exc = GraphInterrupt((Interrupt(value=1, id="x"),))
    assert exc.args[0][0].value == 1


def test_remote_package_imports() -> None:
    # the remote package imports every private name above at import time
    import runtime_svc.remote._owner
    import runtime_svc.remote._rebuild
    import runtime_svc.remote._worker

    assert runtime_svc.remote._rebuild.prepare_single_task is not None


def test_boundary_module_exports_every_private_name_it_promises() -> None:
    import runtime_svc.langgraph_api as api

    missing = [name for name in api.__all__ if getattr(api, name, None) is None]
    assert missing == []


def test_runtime_imports_private_langgraph_only_through_the_boundary() -> None:
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[2]
    private = re.compile(r"^\s*(from|import) langgraph(\._internal|\.pregel\._)", re.M)
    offenders = [
        str(p.relative_to(root))
        for pkg in ("runtime_svc", "gateway", "mesh_core", "mesh_client", "mesh_cli")
        for p in (root / pkg).rglob("*.py")
        if p.name != "langgraph_api.py" and private.search(p.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("parallel", [False, True])
async def test_tasks_event_comes_before_the_superstep_tasks_start(parallel: bool) -> None:
    """The owner checks its lease on the ``tasks`` event: it must precede every task start."""
    from typing import TypedDict

    from langgraph.graph import START, StateGraph

    class S(TypedDict, total=False):
        x: int

    started: list[str] = []

    def node(name: str):  # type: ignore[no-untyped-def]
        def run(state: S) -> S:
            started.append(name)
            return {}

        return run

    b = StateGraph(S)
    names = ["a", "b"] if parallel else ["a"]
    for n in names:
        b.add_node(n, node(n))
        b.add_edge(START, n)
    graph = b.compile()
    seen_before: list[list[str]] = []
    async for mode, chunk in graph.astream({"x": 1}, stream_mode=["tasks", "values"]):
        if mode == "tasks" and "result" not in chunk and "error" not in chunk:
            seen_before.append(list(started))
    assert seen_before and all(s == [] for s in seen_before[: len(names)])
    assert sorted(started) == names
