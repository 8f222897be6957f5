"""langgraph-checkpoint-conformance against MeshCheckpointer on the real Valkey."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)

from mesh_core.adapters.redis import MeshCheckpointer
from mesh_core.localservers import LocalServers
from tests.helpers import unique_prefix

pytestmark = pytest.mark.integration


class _SyncDriven(MeshCheckpointer):
    """Runs the (async-only) suite through the sync methods, in a worker thread."""

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await asyncio.to_thread(self.get_tuple, config)

    async def aput(self, *args: Any) -> RunnableConfig:
        return await asyncio.to_thread(self.put, *args)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        await asyncio.to_thread(self.put_writes, config, writes, task_id, task_path)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        items = await asyncio.to_thread(
            lambda: list(self.list(config, filter=filter, before=before, limit=limit))
        )
        for item in items:
            yield item

    async def adelete_thread(self, thread_id: str) -> None:
        await asyncio.to_thread(self.delete_thread, thread_id)

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        await asyncio.to_thread(self.delete_for_runs, run_ids)

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        await asyncio.to_thread(self.copy_thread, source_thread_id, target_thread_id)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        await asyncio.to_thread(self.prune, thread_ids, strategy=strategy)


@pytest.mark.parametrize("api", ["async", "sync"])
async def test_conformance_every_capability_passes(
    infra: LocalServers, prefix: str, api: str
) -> None:
    clients: list[aredis.Redis] = []
    cls = MeshCheckpointer if api == "async" else _SyncDriven

    async def factory() -> AsyncIterator[MeshCheckpointer]:
        # A fresh namespace per capability suite, as the suite expects a fresh saver.
        client = aredis.Redis.from_url(infra.redis_url)
        clients.append(client)
        sync_client = redis.Redis.from_url(infra.redis_url)
        try:
            yield cls(client, prefix=unique_prefix(prefix), sync_redis=sync_client)
        finally:
            sync_client.close()

    registered = checkpointer_test(name=f"MeshCheckpointer-{api}")(factory)
    try:
        report = await validate(registered)
    finally:
        for c in clients:
            await c.aclose()

    results = report.results
    summary = {
        cap: (res.tests_passed, res.tests_failed, res.failures) for cap, res in results.items()
    }
    for cap in BASE_CAPABILITIES | EXTENDED_CAPABILITIES:
        res = results[cap.value]
        assert res.detected, f"{cap.value} not detected"
        assert res.passed, f"{cap.value} failed: {res.failures}"
        assert res.tests_failed == 0 and res.tests_passed > 0, summary[cap.value]
    passed = sum(r.tests_passed for r in results.values())
    failed = sum(r.tests_failed for r in results.values())
    print(
        f"\nconformance ({api}): {passed} passed, {failed} failed: "
        + ", ".join(f"{k}={v[0]}/{v[0] + v[1]}" for k, v in sorted(summary.items()))
    )
    assert failed == 0
