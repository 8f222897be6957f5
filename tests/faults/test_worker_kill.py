"""A worker SIGKILLed mid-task: JetStream hands its tasks to another worker after the
ack wait (default 5 s; workers heartbeat about every second), so the fan-out finishes
within ack wait + 2 s of the kill, with the in-process result."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mesh_core.localservers import LocalServers
from runtime_svc.remote._queue import DEFAULT_ACK_WAIT
from tests.e2e.cluster import MeshCluster
from tests.faults.graphs import expected_state, fan
from tests.faults.support import GRAPHS

pytestmark = [pytest.mark.faults, pytest.mark.chaos]

JOBS = 8
JOB_SECONDS = 1.0


async def test_fanout_finishes_within_ack_wait_of_a_worker_kill(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    assert DEFAULT_ACK_WAIT <= 5.0
    cluster = MeshCluster(infra, prefix, tmp_path, graphs=GRAPHS, lease_ttl=3)
    redis = aioredis.from_url(infra.redis_url)
    try:
        cluster.add_runtime(role="owner")
        workers = [cluster.add_runtime(role="worker") for _ in range(2)]
        cluster.add_gateway()
        client = cluster.client()
        t = await client.threads.create()
        count_key = f"{prefix}:starts"
        config = {"configurable": {"delay": JOB_SECONDS, "count_key": count_key}}
        run = asyncio.create_task(
            client.runs.wait_full(t["thread_id"], "fan", input={"n": JOBS}, config=config)
        )

        async def per_worker() -> dict[int, int]:
            out: dict[int, int] = {}
            for field in await redis.hkeys(count_key):
                pid = int(field.decode().split("|")[1])
                out[pid] = out.get(pid, 0) + 1
            return out

        # both workers are busy (4 slots each: every job started)
        deadline = time.monotonic() + 30
        while sum((await per_worker()).values()) < JOBS:
            assert time.monotonic() < deadline, await per_worker()
            await asyncio.sleep(0.05)
        busy = await per_worker()
        # the victim: the worker that started a job last (the likeliest to be mid-job)
        starts = {f.decode(): float(at) for f, at in (await redis.hgetall(count_key)).items()}
        last_pid = int(max(starts, key=lambda f: starts[f]).split("|")[1])
        victim = next(w for w in workers if w.pid == last_pid)
        victim.kill()
        killed_at, killed_wall = time.monotonic(), time.time()
        res = await asyncio.wait_for(run, 60)
        took = time.monotonic() - killed_at
        assert res["run"]["status"] == "success"
        assert res["values"] == await expected_state(fan, {"n": JOBS}, config)
        assert took <= DEFAULT_ACK_WAIT + 2, took
        # the victim's unfinished tasks ran again, on the survivor
        after = await per_worker()
        survivor = next(w for w in workers if w is not victim)
        # the victim's jobs still running at the kill ran again, on the survivor (on a
        # loaded machine its earlier jobs may have finished before the kill)
        unfinished = [
            f
            for f, at in starts.items()
            if int(f.split("|")[1]) == victim.pid and at > killed_wall - JOB_SECONDS
        ]
        assert unfinished, (starts, killed_wall)
        assert after[survivor.pid] > busy.get(survivor.pid, 0), (busy, after)
        assert after.get(victim.pid) == busy[victim.pid]
    finally:
        await redis.aclose()
        await cluster.aclose_clients()
        cluster.stop()
