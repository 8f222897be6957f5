"""A thread's writes outside a run are fenced like a run's: delete and prune by a stale
owner are refused, and a deleted thread keeps its fence, so a former owner (paused past
its lease) can never write a checkpoint into it afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.base.id import uuid6

from mesh_core.adapters.redis import MeshCheckpointer
from mesh_core.errors import StaleOwnerError
from mesh_core.localservers import LocalServers

pytestmark = [pytest.mark.integration]


def _checkpoint(step: int) -> Checkpoint:
    return Checkpoint(
        v=1,
        id=str(uuid6(clock_seq=-1)),
        ts="2026-01-01T00:00:00+00:00",
        channel_values={"step": step},
        channel_versions={"step": step + 1},
        versions_seen={},
        updated_channels=None,
    )


def _cfg(tid: str, token: int) -> RunnableConfig:
    return {"configurable": {"thread_id": tid, "checkpoint_ns": "", "fencing_token": token}}


@pytest.fixture
async def saver(infra: LocalServers, prefix: str) -> AsyncIterator[MeshCheckpointer]:
    client = aredis.Redis.from_url(infra.redis_url)
    s = MeshCheckpointer(client, prefix=prefix)
    await s.asetup()
    try:
        yield s
    finally:
        await client.aclose()


async def _put(saver: MeshCheckpointer, tid: str, token: int, step: int) -> Any:
    return await saver.aput(_cfg(tid, token), _checkpoint(step), {"step": step}, {"step": step + 1})


async def test_stale_owner_cannot_delete_or_prune(saver: MeshCheckpointer) -> None:
    for step in range(3):
        await _put(saver, "t", 7, step)
    with pytest.raises(StaleOwnerError):
        await saver.adelete_thread_fenced("t", token=6)
    with pytest.raises(StaleOwnerError):
        await saver.aprune_keep_last("t", 1, token=6)
    assert len([c async for c in saver.alist(_cfg("t", 7))]) == 3
    await saver.aprune_keep_last("t", 1, token=7)
    assert len([c async for c in saver.alist(_cfg("t", 7))]) == 1


async def test_a_deleted_thread_keeps_its_fence(saver: MeshCheckpointer) -> None:
    await _put(saver, "d", 3, 0)
    await saver.abump_fence("d", 9)  # a new owner took the thread
    await saver.adelete_thread_fenced("d", token=9)
    assert await saver.aget_tuple(_cfg("d", 9)) is None
    assert await saver.aget_fence("d") == 9
    assert 0 < await saver.redis.pttl(saver.keys.thread_fence("d")) <= 86_400_000
    with pytest.raises(StaleOwnerError):
        await _put(saver, "d", 3, 1)  # the former owner, paused past its lease, wakes up
    assert await saver.aget_tuple(_cfg("d", 9)) is None
