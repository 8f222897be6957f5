"""16 clients x 10 runs on one thread, for each multitask strategy: every call returns
within a bound, every accepted run ends, reject never lets two runs overlap, and the
thread's final state is what the strategy promises."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis

from mesh_core.localservers import LocalServers
from tests.e2e.cluster import MeshCluster
from tests.faults.support import GRAPHS

pytestmark = [pytest.mark.faults]

CLIENTS = 16
RUNS = 10
CALL_BOUND = 60.0
TERMINAL = {"success", "error", "interrupted", "cancelled"}


@pytest.mark.parametrize("strategy", ["reject", "enqueue", "interrupt", "rollback"])
async def test_sixteen_clients_ten_runs_one_thread(
    strategy: str, infra: LocalServers, prefix: str, tmp_path: Path
) -> None:
    cluster = MeshCluster(infra, prefix, tmp_path, graphs=GRAPHS, lease_ttl=3)
    redis = aioredis.from_url(infra.redis_url)
    try:
        cluster.start(runtimes=2, gateways=2)
        clients = [cluster.client(gateway=i % 2) for i in range(CLIENTS)]
        thread = (await clients[0].threads.create())["thread_id"]
        probe = f"{prefix}:probe"
        config = {"configurable": {"steps": 2, "delay": 0.05, "probe_key": probe}}
        outcomes: list[tuple[str, str]] = []  # (run id or "", status or "rejected")

        async def one_client(client: Any) -> None:
            for _ in range(RUNS):
                try:
                    async with asyncio.timeout(CALL_BOUND):
                        res = await client.runs.wait_full(
                            thread,
                            "chain",
                            input={"step": 0},
                            config=config,
                            multitask_strategy=strategy,
                        )
                except grpc.aio.AioRpcError as err:
                    assert strategy == "reject", err
                    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION, err
                    outcomes.append(("", "rejected"))
                    continue
                outcomes.append((res["run"]["run_id"], res["run"]["status"]))

        try:
            await asyncio.gather(*(one_client(c) for c in clients))
        except TimeoutError:
            runs = await clients[0].runs.list(thread, limit=1000)
            stuck = [(r["run_id"], r["status"]) for r in runs if r["status"] not in TERMINAL]
            raise AssertionError(
                f"a call took longer than {CALL_BOUND}s; not ended: {stuck}"
            ) from None
        assert len(outcomes) == CLIENTS * RUNS

        runs = await clients[0].runs.list(thread, limit=1000)
        recorded = {r["run_id"]: r["status"] for r in runs}
        assert set(recorded.values()) <= TERMINAL, recorded
        accepted = [rid for rid, st in outcomes if st != "rejected"]
        for rid, st in outcomes:
            if st == "rejected":
                continue
            assert st in TERMINAL
            if rid in recorded:
                assert recorded[rid] == st, (rid, st, recorded[rid])
            else:
                assert strategy == "rollback" and st == "cancelled", (rid, st)
        successes = sum(1 for _, st in outcomes if st == "success")
        assert successes >= 1
        statuses = {st for _, st in outcomes}
        if strategy == "reject":
            assert "rejected" in statuses  # 16 clients at once: some found it busy
        if strategy in ("interrupt", "rollback"):
            assert "cancelled" in statuses  # newer runs replaced older ones

        peak = int(await redis.get(f"{probe}:max") or 0)
        assert peak == 1, f"{peak} runs of the thread ran at once"

        state = await clients[0].threads.get_state(thread)
        values = state["values"]
        trail = values["trail"]
        if strategy in ("reject", "enqueue", "rollback"):
            # every successful run added [1, 4]; nothing else stayed (rolled-back runs
            # left no checkpoint behind, rejected ones never ran)
            assert trail == [1, 4] * successes, (successes, trail)
        if strategy == "enqueue":
            assert successes == CLIENTS * RUNS
        if strategy in ("interrupt", "rollback"):
            assert len(accepted) == CLIENTS * RUNS
        assert values["done"] is True and values["step"] == 2
        thread_rec = await clients[0].threads.get(thread)
        assert thread_rec["status"] == "idle"
    finally:
        await redis.aclose()
        await cluster.aclose_clients()
        cluster.stop()
