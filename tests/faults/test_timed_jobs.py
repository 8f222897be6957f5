"""Delayed runs and webhooks are held in Redis, not in a runtime: both survive a SIGKILL.

* A delayed run accepted while one runtime lived fires after that runtime was SIGKILLed,
  on a runtime started later; the runtime that fired it is SIGKILLed mid-run too, and
  the run finishes on the last one, each step committed once.
* A webhook of a run whose runtime is SIGKILLed mid-run is delivered once, by the
  runtime that adopted and finished the run.
* A webhook whose delivering runtime is SIGKILLed mid-POST is delivered by a runtime
  started later, once the claim ran out: the receiver sees two POSTs with the same
  ``Idempotency-Key`` (the retry is visible, never silent) and nothing after its 200.

The receiver is a loopback HTTP server in the test process.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster
from tests.faults.support import Receiver, webhook_due, webhook_finished
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.faults, pytest.mark.chaos, pytest.mark.slow]

VISIBILITY = 4.0
RUNTIME_FLAGS = ["--schedule-visibility", str(VISIBILITY)]


def _cluster(infra: LocalServers, prefix: str, tmp: Path) -> MeshCluster:
    return MeshCluster(
        infra, prefix, tmp, lease_ttl=2, extra_env={"LGMESH_WEBHOOK_ALLOW_HOSTS": "127.0.0.1"}
    )


async def test_delayed_run_survives_sigkill(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    c = _cluster(infra, prefix, tmp_path)
    count_key = f"{prefix}:counts"
    redis = aioredis.from_url(infra.redis_url)
    try:
        first = c.add_runtime(extra=RUNTIME_FLAGS)
        c.add_gateway()
        client = c.client()
        t = await client.threads.create()
        config = {"configurable": {"steps": 4, "delay": 0.5, "count_key": count_key}}
        run = await client.runs.create(
            t["thread_id"], "steps", input={"step": 0}, config=config, after_seconds=2
        )
        assert run["status"] == "pending"
        first.kill()  # the only runtime alive when the run was accepted
        created = time.time()
        later = [c.add_runtime(extra=RUNTIME_FLAGS) for _ in range(2)]

        async def started() -> str:
            async for part in client.runs.join_stream(t["thread_id"], run["run_id"]):
                if part.event == "lifecycle" and part.lifecycle["kind"] == "started":
                    return str(part.lifecycle["runtime_id"])
            return ""

        async with asyncio.timeout(30):
            starter = await started()
        assert time.time() - created >= 1.5, "fired before it was due"
        assert starter
        victim = next(p for p in later if p.name == f"runtime-{int(starter.rsplit('-rt', 1)[1])}")
        await assert_eventually(
            lambda: _counted(redis, count_key, "work1"), timeout=10, message="first step ran"
        )
        victim.kill()  # the runtime that fired it, mid-run

        async def finished() -> bool:
            got = await client.runs.get(t["thread_id"], run["run_id"])
            return got["status"] == "success"

        await assert_eventually(finished, timeout=30, message="the delayed run finished")
        state = await client.threads.get_state(t["thread_id"])
        assert [e.split("@")[0] for e in state["values"]["log"]] == ["s1", "s2", "s3", "s4"]
        runs = await client.runs.list(t["thread_id"])
        assert [r["run_id"] for r in runs] == [run["run_id"]]  # fired once
        counts = {k.decode(): int(v) for k, v in (await redis.hgetall(count_key)).items()}
        # a committed step never runs again; only the step in flight at the kill may
        assert sum(counts.values()) <= 5 and all(counts.get(f"work{i}") for i in range(1, 5))
    finally:
        await redis.aclose()
        await c.aclose_clients()
        c.stop()


async def _counted(redis: aioredis.Redis, key: str, field: str) -> bool:
    return bool(await redis.hget(key, field))


async def test_webhook_survives_sigkill_mid_delivery(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    receiver = Receiver(hang=1)
    await receiver.start()
    c = _cluster(infra, prefix, tmp_path)
    try:
        sender = c.add_runtime(extra=RUNTIME_FLAGS)
        c.add_gateway()
        client = c.client()
        t = await client.threads.create()
        out = await client.runs.wait_full(
            t["thread_id"],
            "steps",
            input={"step": 0},
            config={"configurable": {"steps": 2}},
            webhook=receiver.url,
        )
        run_id = out["run"]["run_id"]
        await assert_eventually(lambda: len(receiver.posts) == 1, timeout=10, message="POSTed")
        sender.kill()  # mid-POST: the receiver has not answered
        killed = time.time()
        c.add_runtime(extra=RUNTIME_FLAGS)
        await assert_eventually(
            lambda: len(receiver.posts) == 2, timeout=30, message="delivered again"
        )
        assert receiver.posts[1]["at"] - killed < VISIBILITY + 10
        keys = [p["headers"]["idempotency-key"] for p in receiver.posts]
        assert keys == [run_id, run_id]
        attempts = [p["headers"]["x-lgmesh-delivery-attempt"] for p in receiver.posts]
        assert attempts == ["1", "1"]  # the first claim died before it could count
        body = receiver.posts[1]["body"]
        assert body["run_id"] == run_id and body["status"] == "success"
        assert body["values"]["step"] == 2
        # answered 200: no more deliveries, even after another claim would have run out
        # (a duration: a claim still held would run out within it and POST again)
        await asyncio.sleep(VISIBILITY + 1.5)
        assert len(receiver.posts) == 2
    finally:
        await receiver.stop()
        await c.aclose_clients()
        c.stop()


async def test_webhook_of_a_run_whose_runtime_died_is_delivered_once(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    receiver = Receiver()
    await receiver.start()
    c = _cluster(infra, prefix, tmp_path)
    try:
        for _ in range(2):
            c.add_runtime(extra=RUNTIME_FLAGS)
        c.add_gateway()
        client = c.client()
        t = await client.threads.create()
        run = await client.runs.create(
            t["thread_id"],
            "steps",
            input={"step": 0},
            config={"configurable": {"steps": 4, "delay": 0.5}},
            webhook=receiver.url,
        )
        # armed by the gateway before it answered (the schedule is watched below)
        assert await webhook_due(infra.redis_url, prefix, run["run_id"]) is not None
        async for part in client.runs.join_stream(t["thread_id"], run["run_id"]):
            if part.event == "lifecycle" and part.lifecycle["kind"] == "started":
                owner = part.lifecycle["runtime_id"]
                break
        c.runtimes[int(owner.rsplit("-rt", 1)[1]) - 1].kill()  # mid-run, nobody watching
        await assert_eventually(
            lambda: len(receiver.posts) == 1, timeout=30, message="delivered by the adopter"
        )
        body = receiver.posts[0]["body"]
        assert body["run_id"] == run["run_id"] and body["status"] == "success"
        assert body["values"]["step"] == 4 and body["attempts"] == 1
        # the job left the schedule (delivered, done): nothing more comes
        await webhook_finished(infra.redis_url, prefix, run["run_id"], timeout=30)
        assert len(receiver.posts) == 1
    finally:
        await receiver.stop()
        await c.aclose_clients()
        c.stop()


async def test_webhook_host_not_allowed_is_refused(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    c = _cluster(infra, prefix, tmp_path)
    try:
        c.add_runtime(extra=RUNTIME_FLAGS)
        c.add_gateway()
        client = c.client()
        t = await client.threads.create()
        from mesh_client.errors import BadRequestError

        with pytest.raises(BadRequestError) as refused:
            await client.runs.create(
                t["thread_id"], "steps", input={"step": 0}, webhook="http://10.1.2.3/hook"
            )
        assert any("run.webhook" in v for v in refused.value.violations)
        assert await client.runs.list(t["thread_id"]) == []
    finally:
        await c.aclose_clients()
        c.stop()
