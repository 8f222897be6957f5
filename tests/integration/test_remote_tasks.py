"""Remote Send tasks on worker processes: same results as in-process LangGraph."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from mesh_cli.launcher import ServiceProcess
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.config import InfraSettings
from mesh_core.localservers import LocalServers
from runtime_svc.remote import RemoteExecutor, TaskQueueSettings
from tests.helpers import unique_prefix
from tests.integration import test_remote_support as support

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def pool_settings(infra: LocalServers) -> InfraSettings:
    # one namespace for the module: the worker pool below serves every test in it
    return InfraSettings(
        etcd_url=infra.etcd_url,
        nats_url=infra.nats_url,
        redis_url=infra.redis_url,
        prefix=unique_prefix("rt"),
    )


@pytest.fixture(scope="module")
def markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("markers")


@pytest.fixture(scope="module")
def workers(
    pool_settings: InfraSettings, markers: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServiceProcess]]:
    logs = tmp_path_factory.mktemp("logs")
    procs = [
        support.start_worker(
            pool_settings,
            worker_id=f"w{i}",
            concurrency=4,
            env={"LGMESH_TEST_MARKERS": str(markers)},
            log=logs / f"w{i}.log",
            wait=False,
        )
        for i in range(2)
    ]
    for p in procs:
        support.wait_ready(p)
    try:
        yield procs
    finally:
        for p in procs:
            support.stop_worker(p)


@pytest.fixture
async def owner(
    pool_settings: InfraSettings, workers: list[ServiceProcess]
) -> AsyncIterator[tuple[RemoteExecutor, MeshCheckpointer]]:
    client = support.redis_client(pool_settings)
    cp = MeshCheckpointer(client, prefix=pool_settings.prefix)
    # the same queue settings as the workers (start_worker: ack_wait 30 s)
    ex = RemoteExecutor(pool_settings, cp, queue=TaskQueueSettings(ack_wait=30.0))
    await ex.start()
    try:
        yield ex, cp
    finally:
        await ex.stop()
        await client.aclose()


def _marker_tags(markers: Path, prefix: str) -> list[str]:
    return [p.name.split(".")[0] for p in markers.iterdir() if p.name.startswith(prefix)]


def _thread() -> dict[str, Any]:
    return {"configurable": {"thread_id": unique_prefix("thread")}}


async def test_map_reduce_200_sends_matches_in_process(
    owner: tuple[RemoteExecutor, MeshCheckpointer], workers: list[ServiceProcess]
) -> None:
    ex, cp = owner
    local = (
        await support.mapreduce()
        .compile(checkpointer=InMemorySaver())
        .ainvoke({"n": 200}, _thread())
    )
    graph = support.mapreduce().compile(checkpointer=cp)
    custom: list[Any] = []
    async with ex.run(_thread(), graph_id="mapreduce") as cfg:
        async for mode, chunk in graph.astream(
            {"n": 200}, cfg, stream_mode=["custom", "values"], durability="sync"
        ):
            if mode == "custom":
                custom.append(chunk)
            else:
                remote = chunk
        stats = ex.run_of(cfg)
    assert stats is not None and stats.stats.submitted == 200 and stats.stats.ok == 200
    assert remote["results"] == local["results"]
    assert remote["total"] == local["total"] == sum(i * i for i in range(200))
    worker_pids = {p.pid for p in workers}
    assert set(remote["pids"]) <= worker_pids
    assert len(set(remote["pids"])) >= 2, "tasks should spread over both worker processes"
    assert sorted(c["square"] for c in custom) == list(range(200))


async def test_interrupt_in_remote_send_pauses_and_resumes(
    owner: tuple[RemoteExecutor, MeshCheckpointer],
    workers: list[ServiceProcess],
    markers: Path,
) -> None:
    ex, cp = owner
    graph = support.approve().compile(checkpointer=cp)
    thread = _thread()
    chunks: list[Any] = []
    async with ex.run(thread, graph_id="approve") as cfg:
        async for chunk in graph.astream({"n": 3}, cfg, stream_mode="updates", durability="sync"):
            chunks.append(chunk)
    interrupts = [c["__interrupt__"] for c in chunks if "__interrupt__" in c]
    assert len(interrupts) == 1
    assert interrupts[0][0].value == {"question": "approve item 1?"}
    state = await graph.aget_state(thread)
    assert state.next == ("work",)
    assert "total" not in state.values

    # a step with one task runs inline on the owner unless something waits on the
    # stream (custom mode here; the runtime always streams subgraphs): then it's remote
    async with ex.run(thread, graph_id="approve") as cfg:
        async for mode, chunk in graph.astream(
            Command(resume="yes"), cfg, stream_mode=["custom", "values"], durability="sync"
        ):
            if mode == "values":
                final = chunk
    assert final["answers"] == ["yes"]
    assert sorted(final["results"]) == [0, 1, 2]
    assert final["total"] == 3
    runs = _marker_tags(markers, "run-")
    # the tasks that finished before the interrupt were not run again
    assert runs.count("run-0") == 1 and runs.count("run-2") == 1
    assert runs.count("run-1") == 2
    assert set(final["pids"]) <= {p.pid for p in workers}


async def test_retry_policy_retries_on_worker_and_errors_keep_their_type(
    owner: tuple[RemoteExecutor, MeshCheckpointer], workers: list[ServiceProcess]
) -> None:
    ex, cp = owner
    graph = support.retrying().compile(checkpointer=cp)
    async with ex.run(_thread(), graph_id="retrying") as cfg:
        out = await graph.ainvoke({"n": 4}, cfg, durability="sync")
    # every item failed twice and succeeded on its third attempt, on a worker
    assert out["results"] == [3, 3, 3, 3]
    assert set(out["pids"]) <= {p.pid for p in workers}

    failing = {"configurable": {"thread_id": unique_prefix("thread")}}
    async with ex.run(failing, graph_id="retrying") as cfg:
        with pytest.raises(support.FlakyError, match=r"item 10\d always fails \(attempt 3\)"):
            await graph.ainvoke({"n": 2, "start": 100}, cfg, durability="sync")
