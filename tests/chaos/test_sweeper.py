"""A background run whose owner dies while nobody watches it is adopted by a sweeper."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.chaos, pytest.mark.slow]


async def test_orphaned_background_run_is_adopted(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    c = MeshCluster(infra, prefix, tmp_path, lease_ttl=2)
    try:
        c.start(runtimes=2, gateways=1)
        client = c.client()
        t = await client.threads.create()
        run = await client.runs.create(
            t["thread_id"],
            "steps",
            input={"step": 0},
            config={"configurable": {"delay": 0.4, "steps": 6}},
        )
        first = [p async for p in _take(client.runs.join_stream(t["thread_id"], run["run_id"]), 2)]
        owner_id = first[0].lifecycle["runtime_id"]
        owner = c.runtimes[int(owner_id.rsplit("-rt", 1)[1]) - 1]
        owner.kill()
        killed = time.monotonic()

        async def finished() -> bool:
            got = await client.runs.get(t["thread_id"], run["run_id"])
            return got["status"] == "success"

        await assert_eventually(
            finished, timeout=20, message="orphaned run finished by the sweeper"
        )
        print(f"adopted and finished {time.monotonic() - killed:.1f}s after the kill")
        got = await client.runs.get(t["thread_id"], run["run_id"])
        assert got["attempts"] == 1
        state = await client.threads.get_state(t["thread_id"])
        assert [e.split("@")[0] for e in state["values"]["log"]] == [f"s{i}" for i in range(1, 7)]
        events = [p async for p in client.runs.join_stream(t["thread_id"], run["run_id"])]
        assert [p.seq for p in events] == list(range(1, len(events) + 1))
        resumed = [
            p.lifecycle
            for p in events
            if p.event == "lifecycle" and p.lifecycle["kind"] == "resumed"
        ]
        assert resumed and resumed[0]["runtime_id"] != owner_id
    finally:
        await c.aclose_clients()
        c.stop()


async def _take(aiter, n):  # type: ignore[no-untyped-def]
    count = 0
    async for item in aiter:
        yield item
        count += 1
        if count >= n:
            return
