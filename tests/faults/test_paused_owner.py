"""An owner paused past its lease (SIGSTOP, then SIGCONT): another runtime takes the run
over, the client's stream moves to it within TTL + 1 s, the paused owner starts no node
after it wakes, committed steps never run again, sequence numbers stay gap-free."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from lgmesh.api.v1 import types_pb2
from lgmesh.runtime.v1 import runtime_pb2, runtime_pb2_grpc

from mesh_client import StreamPart
from mesh_core.jsonvalue import to_struct, to_value
from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster
from tests.faults.graphs import chain, expected_state
from tests.faults.support import GRAPHS
from tests.helpers import assert_eventually

pytestmark = [pytest.mark.faults, pytest.mark.chaos]

TTL = 3
STEPS = 10


async def test_paused_owner_starts_nothing_and_the_stream_moves_on(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    cluster = MeshCluster(infra, prefix, tmp_path, graphs=GRAPHS, lease_ttl=TTL)
    redis = aioredis.from_url(infra.redis_url)
    try:
        cluster.start(runtimes=2, gateways=1)
        client = cluster.client()
        t = await client.threads.create()
        count_key = f"{prefix}:starts"
        config = {"configurable": {"steps": STEPS, "delay": 0.4, "count_key": count_key}}
        parts: list[StreamPart] = []
        zombie = None
        paused_at = moved_after = 0.0
        async for p in client.runs.stream(
            t["thread_id"], "chain", input={"step": 0}, config=config, stream_mode=["updates"]
        ):
            parts.append(p)
            if p.event == "updates" and p.data["work"]["step"] == 3 and zombie is None:
                owner_id = parts[0].lifecycle["runtime_id"]
                zombie = next(r for r in cluster.runtimes if r.name.endswith(owner_id[-1]))
                zombie.signal(signal.SIGSTOP)
                paused_at = time.monotonic()
                paused_wall = time.time()

                async def wake_later(proc=zombie) -> None:  # type: ignore[no-untyped-def]
                    await asyncio.sleep(TTL + 4)
                    proc.signal(signal.SIGCONT)

                waker = asyncio.create_task(wake_later())
            elif (
                zombie is not None
                and not moved_after
                and p.event == "lifecycle"
                and p.lifecycle.get("runtime_id") != parts[0].lifecycle["runtime_id"]
            ):
                moved_after = time.monotonic() - paused_at
        await waker
        assert zombie is not None
        # the client saw the new owner within TTL + 1 s of the pause
        assert 0 < moved_after <= TTL + 1, moved_after
        # the run ended well, with the in-process state
        final = parts[-1]
        assert final.lifecycle["kind"] == "ended" and final.lifecycle["status"] == "success"
        state = await client.threads.get_state(t["thread_id"])
        assert state["values"] == await expected_state(chain, {"step": 0}, config)
        # sequence numbers: gap-free, no duplicates
        seqs = [p.seq for p in parts]
        assert seqs == list(range(1, len(seqs) + 1)), seqs
        # the zombie ran after it woke: it found its lease gone (it logs so) ...
        await assert_eventually(
            lambda: re.search(r"etcd session lease [0-9a-f]+ lost", zombie.output()),
            timeout=20,
            message="the woken zombie noticed its lease was gone",
        )
        # ... then let it run on for a while (a duration: the window in which it could
        # start something it must not), and look at what started where
        await asyncio.sleep(2.0)
        starts = await redis.hgetall(count_key)
        per_node: Counter[str] = Counter()
        zombie_pid = zombie.pid
        for field, at in starts.items():
            node, pid, _ = field.decode().split("|")
            per_node[node] += 1
            if int(pid) == zombie_pid:
                # nothing started on the zombie after it was paused (so after it woke)
                assert float(at) <= paused_wall, (node, float(at) - paused_wall)
        # steps committed before the pause ran once; at most the one in flight ran twice
        assert all(per_node[f"work{i}"] == 1 for i in (1, 2, 3)), per_node
        assert sum(per_node.values()) <= STEPS + 1, per_node
    finally:
        await redis.aclose()
        await cluster.aclose_clients()
        cluster.stop()


async def test_a_run_taken_over_by_several_callers_at_once_is_driven_once(
    infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    """While its owner is paused, a run is asked of the other runtime several times at
    once (gateways resuming it, the sweeper adopting it). They all wait for the same
    lease and share it once it is free: the runtime must still drive the run once --
    two drives in one runtime carry the same fencing token, so the fence cannot stop
    the second from running committed steps again."""
    cluster = MeshCluster(infra, prefix, tmp_path, graphs=GRAPHS, lease_ttl=TTL)
    redis = aioredis.from_url(infra.redis_url)
    zombie = None
    try:
        cluster.start(runtimes=2, gateways=1)
        client = cluster.client()
        t = await client.threads.create()
        count_key = f"{prefix}:starts"
        config = {"configurable": {"steps": STEPS, "delay": 0.3, "count_key": count_key}}
        run = await client.runs.create(t["thread_id"], "chain", input={"step": 0}, config=config)

        async def started(node: str) -> list[int]:
            fields = [f.decode().split("|") for f in await redis.hkeys(count_key)]
            return [int(pid) for n, pid, _ in fields if n == node]

        await assert_eventually(lambda: started("work2"), timeout=30)
        (owner_pid,) = await started("work2")
        zombie = next(r for r in cluster.runtimes if r.pid == owner_pid)
        other = next(r for r in cluster.runtimes if r.pid != owner_pid)
        zombie.signal(signal.SIGSTOP)
        paused_wall = time.time()

        spec = types_pb2.RunSpec(
            thread_id=t["thread_id"], assistant_id="chain", input=to_value({"step": 0})
        )
        spec.config.CopyFrom(to_struct(config))
        req = runtime_pb2.ExecuteRunRequest(
            tenant_id="acme", run_id=run["run_id"], spec=spec, resume=True, graph_id="chain"
        )
        async with cluster.security("gateway").channel(other.address, "runtime") as ch:
            stub = runtime_pb2_grpc.RuntimeServiceStub(ch)

            async def take_over() -> None:
                async for _ in stub.ExecuteRun(
                    req, metadata=cluster.tenant_metadata("acme"), timeout=120
                ):
                    pass

            await asyncio.gather(*(take_over() for _ in range(3)))
        out = await client.runs.join(t["thread_id"], run["run_id"])
        assert out == await expected_state(chain, {"step": 0}, config)
        zombie.kill()
        starts = await redis.hgetall(count_key)
        per_node: Counter[str] = Counter(f.decode().split("|")[0] for f in starts)
        for field, at in starts.items():
            if int(field.decode().split("|")[1]) == owner_pid:
                assert float(at) <= paused_wall, field  # the zombie started nothing more
        # each node ran once, but the one in flight at the pause, which ran twice
        assert set(per_node) == {f"work{i}" for i in range(1, STEPS + 1)}, per_node
        assert sum(per_node.values()) <= STEPS + 1, per_node
    finally:
        if zombie is not None:
            zombie.signal(signal.SIGCONT)
        await redis.aclose()
        await cluster.aclose_clients()
        cluster.stop()
