"""A TaskWorker in the test process on real NATS + Valkey: metrics and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
from prometheus_client import REGISTRY

from mesh_core.adapters.nats import NatsNames
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.config import InfraSettings
from runtime_svc.remote import RemoteExecutor, TaskQueueSettings, TaskWorker
from tests.helpers import assert_eventually, unique_prefix
from tests.integration import test_remote_support as support

pytestmark = pytest.mark.integration


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def mesh(
    infra_settings: InfraSettings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[RemoteExecutor, TaskWorker, Any]]:
    monkeypatch.setenv("LGMESH_TEST_SLOW", "0.4")
    client = support.redis_client(infra_settings)
    cp = MeshCheckpointer(client, prefix=infra_settings.prefix)
    graph = support.slow().compile(checkpointer=cp)
    worker = TaskWorker(
        infra_settings,
        {"slow": graph},
        cp,
        concurrency=2,
        worker_id=unique_prefix("w"),
        pending_poll_interval=0.05,
    )
    ex = RemoteExecutor(infra_settings, cp)
    await ex.start()
    await worker.start()
    try:
        yield ex, worker, graph
    finally:
        await worker.stop()
        await ex.stop()
        await client.aclose()


async def test_inflight_backlog_and_task_counters(
    mesh: tuple[RemoteExecutor, TaskWorker, Any],
) -> None:
    ex, worker, graph = mesh
    ok_before = _sample("lgmesh_runtime_remote_tasks_total", graph_id="slow", outcome="ok")
    async with ex.run({"configurable": {"thread_id": unique_prefix("t")}}, graph_id="slow") as cfg:
        run = asyncio.create_task(graph.ainvoke({"n": 5}, cfg, durability="sync"))

        async def busy() -> bool:
            inflight = _sample("lgmesh_worker_inflight_tasks", worker_id=worker.worker_id)
            return inflight == 2 and await worker.queue_pending() == 3

        await assert_eventually(busy, timeout=10)
        assert _sample("lgmesh_worker_queue_pending") == 3
        out = await run
    assert out["results"] == [100, 101, 102, 103, 104]
    ok_after = _sample("lgmesh_runtime_remote_tasks_total", graph_id="slow", outcome="ok")
    assert ok_after - ok_before == 5
    assert await worker.queue_pending() == 0
    await assert_eventually(
        lambda: _sample("lgmesh_worker_inflight_tasks", worker_id=worker.worker_id) == 0
    )


async def test_cancelling_a_run_stops_its_tasks_on_the_worker(
    mesh: tuple[RemoteExecutor, TaskWorker, Any], infra_settings: InfraSettings
) -> None:
    ex, worker, graph = mesh
    wid = worker.worker_id
    cancelled_before = _sample("lgmesh_worker_tasks_total", worker_id=wid, outcome="cancelled")

    async def run() -> None:
        async with ex.run(
            {"configurable": {"thread_id": unique_prefix("t")}}, graph_id="slow"
        ) as cfg:
            await graph.ainvoke({"n": 4}, cfg, durability="sync")

    task = asyncio.create_task(run())
    await assert_eventually(
        lambda: _sample("lgmesh_worker_inflight_tasks", worker_id=wid) == 2, timeout=10
    )
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # the two running tasks are cancelled on the worker, the two queued ones dropped
    await assert_eventually(
        lambda: (
            _sample("lgmesh_worker_tasks_total", worker_id=wid, outcome="cancelled")
            - cancelled_before
            == 4
        ),
        timeout=10,
    )
    assert _sample("lgmesh_worker_tasks_total", worker_id=wid, outcome="ok") == 0
    nc = await nats.connect(infra_settings.nats_url)
    try:
        info = await nc.jetstream().stream_info(NatsNames(infra_settings.prefix).tasks_stream)
        assert info.state.messages == 0
    finally:
        await nc.close()


async def test_workers_with_conflicting_queue_settings_are_refused(
    infra_settings: InfraSettings,
) -> None:
    client = support.redis_client(infra_settings)
    cp = MeshCheckpointer(client, prefix=infra_settings.prefix)
    first = TaskWorker(infra_settings, {}, cp, worker_id="a", queue=TaskQueueSettings(ack_wait=5))
    second = TaskWorker(infra_settings, {}, cp, worker_id="b", queue=TaskQueueSettings(ack_wait=9))
    await first.start()
    try:
        with pytest.raises(ValueError, match="same TaskQueueSettings"):
            await second.start()
    finally:
        await second.stop()
        await first.stop()
        await client.aclose()
