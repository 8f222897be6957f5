"""The timed-job schedule and delayed-run records on a real Valkey.

Exactly once per tick: concurrent claimers never get the same due job, a claimed job
stays invisible for its visibility and comes back once it ran out (its claimer died),
and a delayed run is admitted by ``admit_run`` once however many runtimes fire it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aredis

from mesh_core.adapters.redis.records import RecordStore, RunRecord
from mesh_core.adapters.redis.schedule import Schedule
from mesh_core.localservers import LocalServers

pytestmark = [pytest.mark.integration]


@pytest.fixture
async def redis(infra: LocalServers) -> AsyncIterator[aredis.Redis]:
    client = aredis.Redis.from_url(infra.redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_concurrent_claimers_never_share_a_job(redis: aredis.Redis, prefix: str) -> None:
    schedules = [Schedule(redis, prefix, "jobs") for _ in range(4)]
    now = time.time()
    for i in range(200):
        await schedules[0].add(f"j{i}", now - 1, {"n": i})
    await schedules[0].add("future", now + 60, {"n": -1})
    claimed: list[str] = []

    async def claimer(s: Schedule) -> None:
        while True:
            jobs = await s.claim(visibility=30, limit=7)
            if not jobs:
                return
            claimed.extend(j.id for j in jobs)

    await asyncio.gather(*(claimer(s) for s in schedules))
    assert sorted(claimed) == sorted(f"j{i}" for i in range(200))  # each once, none early


async def test_a_dead_claimers_job_comes_back_after_its_visibility(
    redis: aredis.Redis, prefix: str
) -> None:
    a, b = Schedule(redis, prefix, "jobs"), Schedule(redis, prefix, "jobs")
    await a.add("job", time.time() - 1, {"url": "x"})
    [job] = await a.claim(visibility=1.0)
    assert job.payload == {"url": "x"}
    assert await b.claim(visibility=1.0) == []  # a holds it ("a" now dies: no done)
    await asyncio.sleep(1.1)  # a duration: the visibility (claim-side clock) runs out
    [again] = await b.claim(visibility=1.0)
    assert again.id == "job"
    await b.later("job", time.time() - 1, {"url": "x", "attempts": 1})
    [retry] = await a.claim(visibility=5)
    assert retry.payload["attempts"] == 1
    await a.done("job")  # one transaction: the job is gone when it returns
    assert await b.claim(visibility=5) == [] and await b.get("job") is None
    assert await b.due_at("job") is None


async def test_a_delayed_run_is_admitted_once(redis: aredis.Redis, prefix: str) -> None:
    records = RecordStore(redis, prefix)
    await records.create_thread("acme", "t1")
    sched = Schedule(redis, prefix, "delayed")
    run = RunRecord(run_id="r1", tenant_id="acme", thread_id="t1", assistant_id="g")
    done = await records.schedule_run(
        run, time.time() + 5, sched.key, sched.data_key, json.dumps({"scoped": run.scoped_thread})
    )
    assert done == 1
    stored = await records.get_run("acme", "t1", "r1")
    assert stored is not None and stored.status == "scheduled"
    assert await records.active_runs() == []  # not the sweeper's until it is admitted
    assert await records.schedule_run(run, time.time(), sched.key, sched.data_key, "{}") == -1

    def attempt() -> RunRecord:
        return RunRecord(
            run_id="r1", tenant_id="acme", thread_id="t1", assistant_id="g", owner="rt"
        )

    outcomes = await asyncio.gather(*(records.admit_run(attempt(), "reject") for _ in range(5)))
    assert sorted(a.outcome for a in outcomes) == ["existing"] * 4 + ["running"]

    # a scheduled run that is cancelled never starts
    late = RunRecord(run_id="r2", tenant_id="acme", thread_id="t1", assistant_id="g")
    await records.schedule_run(late, time.time() + 5, sched.key, sched.data_key, "{}")
    assert await records.request_cancel(late) == "cancelled"
    assert (await records.admit_run(attempt_of(late), "enqueue")).outcome == "existing"


def attempt_of(run: RunRecord) -> RunRecord:
    return RunRecord(
        run_id=run.run_id, tenant_id=run.tenant_id, thread_id=run.thread_id, assistant_id="g"
    )
