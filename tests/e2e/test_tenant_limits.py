"""Every tenant limit, gone past through the public API: RESOURCE_EXHAUSTED with a
QuotaFailure naming the limit (and RetryInfo where waiting helps); nothing is lost, and
the tenant's other work and other tenants go on. Limits: tests/e2e/limits.yaml."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from mesh_client.errors import MeshAPIError
from tests.e2e.cluster import MeshCluster
from tests.helpers import assert_eventually

pytestmark = pytest.mark.e2e


def _quota(err: MeshAPIError, limit: str, value: int, *, retry: bool) -> None:
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err
    assert err.reason == "QUOTA_EXCEEDED"
    assert err.quota == {limit: value}
    assert (err.retry_after is not None) is retry


async def test_concurrent_runs(mesh: MeshCluster) -> None:
    c = mesh.client("q-conc-key")
    slow = {"configurable": {"delay": 1.5, "steps": 1}}
    threads = [(await c.threads.create())["thread_id"] for _ in range(3)]
    first = [await c.runs.create(t, "steps", input={}, config=slow) for t in threads[:2]]
    with pytest.raises(MeshAPIError) as info:
        await c.runs.create(threads[2], "steps", input={}, config=slow)
    _quota(info.value, "concurrent_runs", 2, retry=True)
    assert await c.runs.list(threads[2]) == []  # not recorded
    # A refused stateless run leaves no thread behind.
    before = await c.threads.count()
    with pytest.raises(MeshAPIError) as info:
        await c.runs.wait(None, "steps", input={}, config=slow)
    _quota(info.value, "concurrent_runs", 2, retry=True)
    assert await c.threads.count() == before
    # Other tenants are not counted against it.
    assert (await mesh.client().runs.wait(None, "steps", input={}))["step"] == 5
    # Once the first runs end, the tenant may run again.
    for t, r in zip(threads, first, strict=False):
        await c.runs.join(t, r["run_id"])
    assert (await c.runs.wait(threads[2], "steps", input={}))["step"] == 5


async def test_runtime_share(mesh: MeshCluster) -> None:
    """A tenant runs at most its share of each runtime's run slots (q-share: one of 64):
    three runs on two runtimes put two on one runtime, and the one that finds no slot
    within the runtime's share wait is refused; another tenant's run goes on at once."""
    c = mesh.client("q-share-key")
    slow = {"configurable": {"delay": 30, "steps": 1}}
    threads = [(await c.threads.create())["thread_id"] for _ in range(3)]
    results = await asyncio.gather(
        *(c.runs.create(t, "steps", input={}, config=slow) for t in threads),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, MeshAPIError)]
    started = [(t, r) for t, r in zip(threads, results, strict=True) if isinstance(r, dict)]
    assert refused and len(started) <= 2, results
    _quota(refused[0], "runtime_share", 1, retry=True)
    assert (await mesh.client().runs.wait(None, "steps", input={}))["step"] == 5
    for t, r in started:
        await c.runs.cancel(t, r["run_id"], wait=True)


async def test_run_creation_rate(mesh: MeshCluster) -> None:
    c = mesh.client("q-rate-key")
    t = (await c.threads.create())["thread_id"]
    cfg = {"configurable": {"steps": 1}}
    for _ in range(2):  # the burst
        await c.runs.wait(t, "steps", input={}, config=cfg)
    with pytest.raises(MeshAPIError) as info:
        await c.runs.wait(t, "steps", input={}, config=cfg)
    _quota(info.value, "runs_per_second", 0, retry=True)
    assert 0 < info.value.retry_after <= 5.0
    await asyncio.sleep(info.value.retry_after)
    assert (await c.runs.wait(t, "steps", input={}, config=cfg))["step"] == 3


async def test_concurrent_streams_and_joins(mesh: MeshCluster) -> None:
    c = mesh.client("q-streams-key")
    slow = {"configurable": {"delay": 1.0, "steps": 1}}
    threads = [(await c.threads.create())["thread_id"] for _ in range(3)]
    runs = [await c.runs.create(t, "steps", input={}, config=slow) for t in threads]
    # Two joins hold the tenant's two stream slots: each has had an event, so its call
    # is admitted and open (the slot is taken before the first event is sent).
    holders = [
        c.runs.join_stream(t, r["run_id"], stream_mode="values")
        for t, r in zip(threads[:2], runs[:2], strict=True)
    ]
    firsts = [await anext(h) for h in holders]
    with pytest.raises(MeshAPIError) as info:
        await c.runs.join(threads[2], runs[2]["run_id"])
    _quota(info.value, "concurrent_streams", 2, retry=True)
    with pytest.raises(MeshAPIError) as info:
        async for _ in c.runs.stream(threads[2], "steps", input={}):
            pass
    _quota(info.value, "concurrent_streams", 2, retry=True)

    async def last_values(first: Any, rest: Any) -> Any:
        parts = [first, *[p async for p in rest]]
        return [p.data for p in parts if p.event == "values"][-1]

    ends = await asyncio.gather(*(last_values(f, h) for f, h in zip(firsts, holders, strict=True)))
    assert [v["step"] for v in ends] == [1, 1]
    assert (await c.runs.join(threads[2], runs[2]["run_id"]))["step"] == 1


async def test_run_duration(mesh: MeshCluster) -> None:
    c = mesh.client("q-time-key")
    t = (await c.threads.create())["thread_id"]
    with pytest.raises(MeshAPIError) as info:
        await c.runs.wait(t, "steps", input={}, config={"configurable": {"delay": 0.4}})
    _quota(info.value, "max_run_seconds", 1, retry=False)
    [run] = await c.runs.list(t)
    assert run["status"] == "timeout"
    thread = await c.threads.get(t)
    assert thread["status"] == "error"
    # The thread keeps the steps it finished, and takes new runs.
    state = await c.threads.get_state(t)
    assert 1 <= state["values"]["step"] < 5
    assert (await c.runs.wait(t, "steps", input={"step": 4}, config={"configurable": {}}))[
        "step"
    ] == 5


async def test_recursion_limit(mesh: MeshCluster) -> None:
    c = mesh.client("q-deep-key")
    with pytest.raises(MeshAPIError) as info:
        await c.runs.wait(None, "steps", input={}, config={"recursion_limit": 10**9})
    _quota(info.value, "max_recursion_limit", 50, retry=False)
    assert (await c.runs.wait(None, "steps", input={}, config={"recursion_limit": 50}))["step"] == 5


async def test_sends_per_superstep(mesh: MeshCluster) -> None:
    c = mesh.client("q-sends-key")
    t = (await c.threads.create())["thread_id"]
    with pytest.raises(MeshAPIError) as info:
        await c.runs.wait(t, "fan", input={"n": 5})
    _quota(info.value, "max_sends_per_step", 4, retry=False)
    [run] = await c.runs.list(t)
    assert run["status"] == "error"
    assert (await c.runs.wait(None, "fan", input={"n": 4}))["total"] == 0 + 1 + 4 + 9


async def test_thread_state_size(mesh: MeshCluster) -> None:
    c = mesh.client("q-state-key")
    t = (await c.threads.create())["thread_id"]
    cfg = {"configurable": {"size": 60_000}}
    for _ in range(3):
        await c.runs.wait(t, "grow", input={}, config=cfg)
    before = await c.threads.get_state(t)
    with pytest.raises(MeshAPIError) as info:
        await c.runs.wait(t, "grow", input={}, config=cfg)
    _quota(info.value, "max_state_bytes", 200_000, retry=False)
    # No checkpoint past the limit was written. The failed step's own writes stay
    # pending on the last checkpoint that fit (LangGraph keeps a finished task's
    # writes), so the latest state view shows them, but no checkpoint holds them and
    # the next run starts from the stored state.
    assert len(before["values"]["blobs"]) == 3
    history = await c.threads.get_history(t, limit=50)
    assert max(len(s["values"].get("blobs", [])) for s in history) == 3
    with pytest.raises(MeshAPIError) as info:
        await c.runs.wait(t, "grow", input={}, config=cfg)
    _quota(info.value, "max_state_bytes", 200_000, retry=False)
    runs = await c.runs.list(t)
    assert [r["status"] for r in runs].count("success") == 3

    async def thread_error() -> bool:
        return (await c.threads.get(t))["status"] == "error"

    await assert_eventually(thread_error)
