"""Remote task workers dying: SIGKILL mid-task (redelivery) and a poisoned task
that kills every worker running it (dead-lettered, the run fails clearly)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
from langgraph.checkpoint.memory import InMemorySaver

from mesh_cli.launcher import ServiceProcess, ServiceStartError
from mesh_core.adapters.nats import NatsNames
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.config import InfraSettings
from mesh_core.localservers import LocalServers
from runtime_svc.remote import (
    RemoteExecutor,
    TaskDeadLetteredError,
    TaskQueueSettings,
    TaskWorker,
)
from tests.helpers import assert_eventually, unique_prefix
from tests.integration import test_remote_support as support

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

ACK_WAIT = 1.5


@pytest.fixture
async def owner(
    infra_settings: InfraSettings,
) -> AsyncIterator[tuple[RemoteExecutor, MeshCheckpointer]]:
    client = support.redis_client(infra_settings)
    cp = MeshCheckpointer(client, prefix=infra_settings.prefix)
    queue = TaskQueueSettings(ack_wait=ACK_WAIT, max_deliveries=2)
    ex = RemoteExecutor(infra_settings, cp, queue=queue)
    await ex.start()
    try:
        yield ex, cp
    finally:
        await ex.stop()
        await client.aclose()


def _worker(settings: InfraSettings, markers: Path, wid: str, *, wait: bool) -> ServiceProcess:
    return support.start_worker(
        settings,
        worker_id=wid,
        concurrency=4,
        ack_wait=ACK_WAIT,
        max_deliveries=2,
        env={"LGMESH_TEST_MARKERS": str(markers), "LGMESH_TEST_SLOW": "1.0"},
        wait=wait,
    )


async def _start(settings: InfraSettings, markers: Path, wid: str) -> ServiceProcess:
    return await asyncio.to_thread(_worker, settings, markers, wid, wait=True)


def _markers(markers: Path, tag: str) -> list[str]:
    return [p.name for p in markers.iterdir() if p.name.startswith(f"{tag}.")]


async def test_worker_sigkilled_mid_task_is_redelivered(
    infra_settings: InfraSettings,
    owner: tuple[RemoteExecutor, MeshCheckpointer],
    tmp_path: Path,
) -> None:
    ex, cp = owner
    expected = (
        await support.slow()
        .compile(checkpointer=InMemorySaver())
        .ainvoke({"n": 4}, {"configurable": {"thread_id": "local"}})
    )
    first = await _start(infra_settings, tmp_path, "victim")
    second: ServiceProcess | None = None
    graph = support.slow().compile(checkpointer=cp)
    try:
        async with ex.run(
            {"configurable": {"thread_id": unique_prefix("thread")}}, graph_id="slow"
        ) as cfg:
            run = asyncio.create_task(graph.ainvoke({"n": 4}, cfg, durability="sync"))
            # all four tasks started on the first worker: kill it mid-task
            await assert_eventually(
                lambda: all(_markers(tmp_path, f"start-{i}") for i in range(4)), timeout=15
            )
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            second = await _start(infra_settings, tmp_path, "survivor")
            out: dict[str, Any] = await asyncio.wait_for(run, timeout=30)
    finally:
        support.stop_worker(first)
        if second is not None:
            support.stop_worker(second)
    assert out["results"] == expected["results"] == [100, 101, 102, 103]
    assert out["total"] == expected["total"]
    assert second is not None and set(out["pids"]) == {second.pid}
    for i in range(4):  # each task ran twice: once killed, once to completion
        pids = {name.split(".")[1] for name in _markers(tmp_path, f"start-{i}")}
        assert pids == {str(first.pid), str(second.pid)}


async def test_poisoned_task_is_dead_lettered_and_fails_the_run(
    infra_settings: InfraSettings,
    owner: tuple[RemoteExecutor, MeshCheckpointer],
    tmp_path: Path,
) -> None:
    ex, cp = owner
    names = NatsNames(infra_settings.prefix)
    procs: list[ServiceProcess] = []

    async def supervise() -> None:
        # keep one worker alive: the poisoned task kills each one that runs it, also
        # one that takes it while it is still starting
        while True:
            if not procs or procs[-1].poll() is not None:
                proc = _worker(infra_settings, tmp_path, f"w{len(procs)}", wait=False)
                procs.append(proc)
                with contextlib.suppress(ServiceStartError):
                    await asyncio.to_thread(support.wait_ready, proc)
            await asyncio.sleep(0.05)  # the supervisor's poll interval, not a wait for an event

    supervisor = asyncio.create_task(supervise())
    graph = support.poison().compile(checkpointer=cp)
    try:
        async with ex.run(
            {"configurable": {"thread_id": unique_prefix("thread")}}, graph_id="poison"
        ) as cfg:
            with pytest.raises(TaskDeadLetteredError, match="dead-lettered after 2 deliveries"):
                await asyncio.wait_for(graph.ainvoke({"n": 3}, cfg, durability="sync"), 45)
        # ran exactly max_deliveries times, each time killing its worker
        assert len(_markers(tmp_path, "poison")) == 2
        assert sum(p.poll() == -signal.SIGKILL for p in procs) == 2

        nc = await nats.connect(infra_settings.nats_url)
        try:
            js = nc.jetstream()
            dead = await js.get_last_msg(names.dead_letter_stream, names.dead_letter_subject)
            assert dead.headers is not None
            assert dead.headers["Lgmesh-Task-Name"] == "work"
            assert dead.headers["Lgmesh-Deliveries"] == "3"

            async def queue_empty() -> bool:
                info = await js.stream_info(names.tasks_stream)
                return info.state.messages == 0

            # nothing of the failed run stays in the work queue
            await assert_eventually(queue_empty, timeout=15)
        finally:
            await nc.close()
    finally:
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor
        for p in procs:
            support.stop_worker(p)


@pytest.mark.parametrize("shared_connection", [False, True])
async def test_nats_restart_mid_run_the_run_still_completes(
    fresh_infra: LocalServers,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    shared_connection: bool,
) -> None:
    settings = InfraSettings(
        etcd_url=fresh_infra.etcd_url,
        nats_url=fresh_infra.nats_url,
        redis_url=fresh_infra.redis_url,
        prefix=prefix,
    )
    monkeypatch.setenv("LGMESH_TEST_SLOW", "0.5")
    client = support.redis_client(settings)
    cp = MeshCheckpointer(client, prefix=prefix)
    graph = support.slow().compile(checkpointer=cp)
    queue = TaskQueueSettings(ack_wait=ACK_WAIT, max_deliveries=3)
    # the runtime shares one connection between its roles; a bare worker/owner has its own
    nc = (
        await nats.connect(settings.nats_url, max_reconnect_attempts=-1)
        if shared_connection
        else None
    )
    worker = TaskWorker(
        settings, {"slow": graph}, cp, concurrency=8, worker_id="w", queue=queue, nc=nc
    )
    ex = RemoteExecutor(settings, cp, queue=queue, nc=nc)
    await ex.start()
    await worker.start()
    try:
        async with ex.run({"configurable": {"thread_id": "t"}}, graph_id="slow") as cfg:
            run = asyncio.create_task(graph.ainvoke({"n": 6}, cfg, durability="sync"))
            await assert_eventually(lambda: worker.inflight == 6, timeout=10)
            # tasks running, replies about to be sent: restart nats-server (same store)
            await asyncio.to_thread(fresh_infra.nats.restart)
            out = await asyncio.wait_for(run, timeout=40)
        assert out["results"] == [100, 101, 102, 103, 104, 105]
    finally:
        await worker.stop()
        await ex.stop()
        await client.aclose()
        if nc is not None:
            await nc.close()
