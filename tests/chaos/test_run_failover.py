"""Owner failures during a run: SIGKILL (failover) and SIGSTOP past the lease TTL (zombie)."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mesh_client import StreamPart
from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

TTL = 3
STEPS = 8


@pytest.fixture
async def cluster(infra: LocalServers, prefix: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    c = MeshCluster(infra, prefix, tmp_path, lease_ttl=TTL)
    c.start(runtimes=2, gateways=2)
    try:
        yield c
    finally:
        await c.aclose_clients()
        c.stop()


def _runtime_by_id(cluster: MeshCluster, runtime_id: str):  # type: ignore[no-untyped-def]
    n = int(runtime_id.rsplit("-rt", 1)[1])
    return cluster.runtimes[n - 1]


async def test_owner_sigkill_mid_run(
    cluster: MeshCluster, infra: LocalServers, prefix: str
) -> None:
    client = cluster.client(gateway=0)
    watcher = cluster.client(gateway=1)
    count_key = f"{prefix}:counts"
    t = await client.threads.create()
    config = {"configurable": {"delay": 0.6, "steps": STEPS, "count_key": count_key}}

    parts: list[StreamPart] = []
    killed_at = 0.0
    resumed_at = 0.0
    committed_before_kill: list[int] = []
    early: list[StreamPart] = []

    async def follower_that_disconnects() -> None:
        # A second client watching on the other gateway that drops after 3 events
        # (started once the first event, and so the run id, is known).
        async for p in watcher.runs.join_stream(t["thread_id"], parts[0].run_id):
            early.append(p)
            if len(early) == 3:
                return

    follower: asyncio.Task[None] | None = None
    async for p in client.runs.stream(
        t["thread_id"],
        "steps",
        input={"step": 0},
        config=config,
        stream_mode=["updates", "custom", "values"],
    ):
        parts.append(p)
        if follower is None:
            follower = asyncio.create_task(follower_that_disconnects())
        if p.event == "updates" and "work" in p.data:
            if not killed_at:
                committed_before_kill.append(p.data["work"]["step"])
            if p.data["work"]["step"] == 3 and not killed_at:
                owner = _runtime_by_id(cluster, parts[0].lifecycle["runtime_id"])
                owner.kill()
                killed_at = time.monotonic()
        if p.event == "lifecycle" and p.lifecycle["kind"] == "resumed" and not resumed_at:
            resumed_at = time.monotonic()
    assert follower is not None
    await follower

    end = parts[-1]
    assert end.lifecycle["kind"] == "ended" and end.lifecycle["status"] == "success", cluster.logs()
    assert end.data["step"] == STEPS
    assert [e.split("@")[0] for e in end.data["log"]] == [f"s{i}" for i in range(1, STEPS + 1)]
    # one stream, every event once, in order
    seqs = [p.seq for p in parts]
    assert seqs == list(range(1, len(seqs) + 1))
    # the failover happened and was fast
    assert resumed_at, "no 'resumed' lifecycle event"
    gap = resumed_at - killed_at
    print(f"kill -> first event from the new owner: {gap:.2f}s (ttl {TTL}s)")
    assert gap <= TTL + 1.0
    # nodes that had committed were not run again
    r = aioredis.from_url(infra.redis_url)
    counts = {k.decode(): int(v) for k, v in (await r.hgetall(count_key)).items()}
    await r.aclose()
    for step in committed_before_kill:
        assert counts[f"work{step}"] == 1, counts
    assert all(counts[f"work{i}"] >= 1 for i in range(1, STEPS + 1))
    assert sum(counts.values()) <= STEPS + 1  # at most the in-flight node ran twice

    # a client that had disconnected joins from its cursor on the other gateway
    cursor = early[-1].seq
    rest = [
        p async for p in watcher.runs.join_stream(t["thread_id"], end.run_id, last_event_id=cursor)
    ]
    joined = early + rest
    assert [p.seq for p in joined] == seqs
    assert [(p.event, p.data) for p in joined] == [(p.event, p.data) for p in parts]


async def _wake_later(proc, delay: float) -> None:  # type: ignore[no-untyped-def]
    await asyncio.sleep(delay)
    proc.signal(signal.SIGCONT)


async def test_zombie_owner_cannot_commit(
    cluster: MeshCluster, infra: LocalServers, prefix: str
) -> None:
    client = cluster.client()
    count_key = f"{prefix}:zcounts"
    t = await client.threads.create()
    config = {"configurable": {"delay": 0.8, "steps": 6, "count_key": count_key}}
    parts: list[StreamPart] = []
    paused = None
    async for p in client.runs.stream(
        t["thread_id"], "steps", input={"step": 0}, config=config, stream_mode=["updates", "values"]
    ):
        parts.append(p)
        if (
            p.event == "updates"
            and "work" in p.data
            and p.data["work"]["step"] == 2
            and paused is None
        ):
            paused = _runtime_by_id(cluster, parts[0].lifecycle["runtime_id"])
            paused.signal(signal.SIGSTOP)
            zombie_pid = paused.pid
            waker = asyncio.create_task(_wake_later(paused, TTL + 3))  # well past its lease
    await waker
    end = parts[-1]
    assert end.lifecycle["status"] == "success", (end.lifecycle.get("error"), cluster.logs())
    steps = [e.split("@") for e in end.data["log"]]
    assert [s for s, _ in steps] == [f"s{i}" for i in range(1, 7)]  # no step committed twice
    # everything after the pause was committed by the new owner, none by the zombie
    after = [int(pid) for s, pid in steps if int(s[1:]) > 3]
    assert zombie_pid not in after and len(after) == 3
    seqs = [p.seq for p in parts]
    assert seqs == list(range(1, len(seqs) + 1))
    assert any(p.lifecycle.get("kind") == "resumed" for p in parts if p.event == "lifecycle")
    # the zombie is alive again and noticed it lost the thread
    assert paused is not None and paused.alive
