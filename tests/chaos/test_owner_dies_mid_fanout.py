"""The owner is SIGKILLed in the middle of a Send fan-out run by remote workers."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio as aioredis

from mesh_client import StreamPart
from mesh_core.adapters.redis.checkpointer import MeshCheckpointer
from mesh_core.adapters.redis.records import scoped_thread_id
from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

N = 12


async def test_owner_killed_mid_fanout_resumes_without_rerunning_saved_tasks(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    c = MeshCluster(infra, prefix, tmp_path, lease_ttl=3)
    redis = aioredis.from_url(infra.redis_url)
    try:
        c.add_runtime(role="owner")
        c.add_runtime(role="owner")
        c.add_runtime(role="worker", extra=["--worker-concurrency", "2"])
        c.add_runtime(role="worker", extra=["--worker-concurrency", "2"])
        c.add_gateway()
        client = c.client()
        count_key = f"{prefix}:fan"
        t = await client.threads.create()
        saver = MeshCheckpointer(redis, prefix=prefix)
        scoped = scoped_thread_id("acme", t["thread_id"])

        async def saved_jobs() -> set[int]:
            """Jobs whose writes the owner has saved (pending writes of the latest checkpoint)."""
            tup = await saver.aget_tuple(
                {"configurable": {"thread_id": scoped, "checkpoint_ns": ""}}
            )
            done: set[int] = set()
            for _task, channel, value in (tup.pending_writes if tup else None) or []:
                if channel == "results":
                    done.update(int(v**0.5) for v in value)
            return done

        saved_before_kill: set[int] = set()
        parts: list[StreamPart] = []
        killed = False
        async for p in client.runs.stream(
            t["thread_id"],
            "fan",
            input={"n": N},
            stream_mode=["updates"],
            config={"configurable": {"delay": 0.6, "count_key": count_key}},
        ):
            parts.append(p)
            if not killed and p.event == "updates" and "job" in p.data:
                saved = await saved_jobs()
                if len(saved) >= 4:  # kill the owner mid-fan-out, with some writes saved
                    owner_id = parts[0].lifecycle["runtime_id"]
                    c.runtimes[int(owner_id.rsplit("-rt", 1)[1]) - 1].kill()
                    killed = True
                    saved_before_kill = await saved_jobs()
        end = parts[-1]
        assert killed and end.lifecycle["status"] == "success", c.logs()
        assert any(p.lifecycle.get("kind") == "resumed" for p in parts if p.event == "lifecycle")
        state = await client.threads.get_state(t["thread_id"])
        assert sorted(state["values"]["results"]) == [i * i for i in range(N)]
        assert state["values"]["total"] == sum(i * i for i in range(N))
        counts = {k.decode(): int(v) for k, v in (await redis.hgetall(count_key)).items()}
        assert len(saved_before_kill) >= 4, saved_before_kill
        for i in saved_before_kill:  # saved writes are reused, not run again
            assert counts[f"job{i}"] == 1, (i, counts)
        assert all(
            1 <= counts[f"job{i}"] <= 2 for i in range(N)
        )  # at least once, at most once more
        print(f"saved before the kill: {sorted(saved_before_kill)}; executions: {counts}")
    finally:
        await redis.aclose()
        await c.aclose_clients()
        c.stop()
