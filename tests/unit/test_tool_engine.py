"""ToolEngine without Redis: results, tool errors, timeouts, concurrency caps, metrics."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from mesh_core.config import InfraSettings
from mesh_core.errors import DeadlineExceededError, InvalidArgumentError, ResourceExhaustedError
from tool_svc import Invocation, ToolEngine, ToolServiceSettings, ToolSpec, load_registry

CANCELLED = asyncio.Event()
RELEASE = threading.Event()


async def sleepy(seconds: float) -> str:
    """Sleep, noticing cancellation."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        CANCELLED.set()
        raise
    return "slept"


def gate(tag: str) -> str:
    """Block a thread until the test releases it."""
    RELEASE.wait(10)
    return tag


def boom(message: str) -> str:
    """Raise."""
    raise RuntimeError(message)


def _engine(**kw: float) -> ToolEngine:
    settings = ToolServiceSettings(
        infra=InfraSettings(),
        tools=(
            ToolSpec("mesh_demo.tools:TOOLS"),
            ToolSpec("tests.unit.test_tool_engine:sleepy", timeout=0.2),
            ToolSpec("tests.unit.test_tool_engine:gate", max_concurrency=1, max_queue_wait=0.05),
            ToolSpec("tests.unit.test_tool_engine:boom"),
        ),
        **kw,  # type: ignore[arg-type]
    )
    return ToolEngine(load_registry(settings), thread_pool_size=4)


def _inv(name: str, args: object, **kw: object) -> Invocation:
    return Invocation(tenant_id="t", name=name, arguments_json=json.dumps(args), **kw)  # type: ignore[arg-type]


def _metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_ok_result_and_artifact() -> None:
    engine = _engine()
    try:
        res = await engine.invoke(_inv("search", {"query": "grpc"}))
        assert res.status == "ok" and "1." in res.content and not res.replayed
        doc = await engine.invoke(_inv("fetch_document", {"doc_id": 2}))
        assert doc.artifact_json is not None and json.loads(doc.artifact_json)["id"] == 2
        assert (await engine.invoke(_inv("wait", {"seconds": 0}))).content == "waited 0.0s"
    finally:
        await engine.aclose()


async def test_tool_error_is_a_result_not_an_exception() -> None:
    engine = _engine()
    before = _metric("lgmesh_tool_errors_total", tool="boom", kind="tool_error")
    try:
        res = await engine.invoke(_inv("boom", {"message": "bad input from the model"}))
        assert res.status == "tool_error"
        assert (res.error_type, res.error_message) == ("RuntimeError", "bad input from the model")
        assert "bad input" in res.content
        zero = await engine.invoke(_inv("divide", {"a": 1, "b": 0}))
        assert zero.status == "tool_error" and zero.error_type == "ZeroDivisionError"
    finally:
        await engine.aclose()
    assert _metric("lgmesh_tool_errors_total", tool="boom", kind="tool_error") == before + 1


async def test_bad_arguments_are_invalid_argument() -> None:
    engine = _engine()
    try:
        with pytest.raises(InvalidArgumentError) as info:
            await engine.invoke(Invocation("t", "search", "{not json"))
        assert info.value.violations[0].field == "arguments_json"
        with pytest.raises(InvalidArgumentError):
            await engine.invoke(Invocation("t", "search", "[1, 2]"))
        with pytest.raises(InvalidArgumentError) as info:
            await engine.invoke(_inv("search", {"query": 1, "extra": True}))
        fields = {v.field for v in info.value.violations}
        assert "arguments.query" in fields
    finally:
        await engine.aclose()


async def test_async_timeout_cancels_the_tool() -> None:
    CANCELLED.clear()
    engine = _engine()
    try:
        with pytest.raises(DeadlineExceededError) as info:
            await engine.invoke(_inv("sleepy", {"seconds": 5}))
        assert info.value.reason == "TOOL_TIMEOUT"
        await asyncio.wait_for(CANCELLED.wait(), 2)
        # The caller's own (shorter) deadline wins too.
        with pytest.raises(DeadlineExceededError):
            await engine.invoke(_inv("wait", {"seconds": 5}, deadline=0.05))
    finally:
        await engine.aclose()


async def test_concurrency_cap_then_busy_and_sync_timeout() -> None:
    RELEASE.clear()
    engine = _engine()
    try:
        first = asyncio.create_task(engine.invoke(_inv("gate", {"tag": "a"})))
        await asyncio.sleep(0)
        assert await _until(lambda: _metric("lgmesh_tool_inflight", tool="gate") == 1)
        with pytest.raises(ResourceExhaustedError) as info:
            await engine.invoke(_inv("gate", {"tag": "b"}))
        assert info.value.retry_after and info.value.reason == "TOOL_BUSY"
        RELEASE.set()
        assert (await first).content == "a"
        assert await _until(lambda: _metric("lgmesh_tool_inflight", tool="gate") == 0)
        # A sync tool past its timeout: the caller is told, the slot stays taken until the
        # thread returns (threads cannot be stopped).
        with pytest.raises(DeadlineExceededError):
            await engine.invoke(_inv("block", {"seconds": 0.3}, deadline=0.05))
        assert _metric("lgmesh_tool_inflight", tool="block") == 1
        assert await _until(lambda: _metric("lgmesh_tool_inflight", tool="block") == 0)
    finally:
        RELEASE.set()
        await engine.aclose()


async def _until(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if cond():
            return True
        await asyncio.sleep(0.01)
    return False
