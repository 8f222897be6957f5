"""Each store with the payload codec, on the real servers: what is stored is sealed,
bound to its place; a key ring with the old key second opens it; plain data from before
reads; a key not in the ring (or no keys) is a SealedDataError (DATA_LOSS) with a reason,
and a scheduled job that does not open does not stop the others."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
import redis.asyncio as aredis
from langchain_core.runnables import RunnableConfig
from lgmesh.api.v1 import types_pb2

from mesh_core.adapters.nats.eventlog import RunEventLog, connect_nats
from mesh_core.adapters.nats.subjects import NatsNames
from mesh_core.adapters.redis import MeshCheckpointer
from mesh_core.adapters.redis.records import RecordStore, RunRecord
from mesh_core.adapters.redis.schedule import Schedule
from mesh_core.localservers import LocalServers
from mesh_core.security import PayloadCodec, SealedDataError, is_sealed
from tests.integration.test_checkpointer import _checkpoint

pytestmark = pytest.mark.integration

K_OLD, K_NEW, K_OTHER = os.urandom(32), os.urandom(32), os.urandom(32)
OLD, NEW, OTHER = PayloadCodec([K_OLD]), PayloadCodec([K_NEW]), PayloadCodec([K_OTHER])
ROTATED = PayloadCodec([K_NEW, K_OLD])  # the new key seals, the old one still opens
MARK = b"MARK-" + uuid.uuid4().hex.encode()


@pytest.fixture
async def redis(infra: LocalServers) -> AsyncIterator[aredis.Redis]:
    c = aredis.Redis.from_url(infra.redis_url)
    try:
        yield c
    finally:
        await c.aclose()


def _unreadable(exc: pytest.ExceptionInfo[SealedDataError], reason: str) -> None:
    assert exc.value.code == grpc.StatusCode.DATA_LOSS
    assert exc.value.reason == reason


async def _everything(redis: aredis.Redis, prefix: str) -> list[bytes]:
    out: list[bytes] = []
    async for key in redis.scan_iter(match=f"{prefix}:*"):
        kind = (await redis.type(key)).decode()
        if kind == "hash":
            out += [v for kv in (await redis.hgetall(key)).items() for v in kv]
        elif kind == "string":
            out.append(await redis.get(key) or b"")
    return out


# -- checkpointer ---------------------------------------------------------------------------
def _cfg(tid: str) -> RunnableConfig:
    return {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}


async def test_checkpoints_sealed_per_thread_rotate_and_copy(
    redis: aredis.Redis, prefix: str
) -> None:
    old = MeshCheckpointer(redis, prefix=prefix, codec=OLD)
    ck = _checkpoint({"msg": MARK.decode()})
    cfg = await old.aput(_cfg("t1"), ck, {"source": "input", "step": -1}, {"msg": 1})
    await old.aput_writes(cfg, [("msg", MARK.decode() + "w")], "task-1")
    stored = await _everything(redis, prefix)
    assert not [v for v in stored if MARK in v] and sum(map(is_sealed, stored)) == 3

    rotated = MeshCheckpointer(redis, prefix=prefix, codec=ROTATED)
    tup = await rotated.aget_tuple(_cfg("t1"))
    assert tup is not None and tup.checkpoint["channel_values"] == {"msg": MARK.decode()}
    assert tup.pending_writes == [("task-1", "msg", MARK.decode() + "w")]

    for saver, reason in (
        (MeshCheckpointer(redis, prefix=prefix, codec=NEW), "PAYLOAD_KEY_UNKNOWN"),
        (MeshCheckpointer(redis, prefix=prefix), "PAYLOAD_KEYS_MISSING"),
    ):
        with pytest.raises(SealedDataError) as info:
            await saver.aget_tuple(_cfg("t1"))
        _unreadable(info, reason)
        assert "thread 't1'" in info.value.message

    # copied to another thread: sealed again for it (a raw copy would not open there)
    await rotated.acopy_thread("t1", "t2")
    copy = await rotated.aget_tuple(_cfg("t2"))
    assert copy is not None and copy.checkpoint["channel_values"] == {"msg": MARK.decode()}
    src, dst = rotated.keys.checkpoint_keys("t1"), rotated.keys.checkpoint_keys("t2")
    await redis.hset(dst.blobs, mapping=await redis.hgetall(src.blobs))  # moved by hand
    with pytest.raises(SealedDataError) as info:
        await rotated.aget_tuple(_cfg("t2"))
    _unreadable(info, "PAYLOAD_UNREADABLE")

    # data from before the codec reads, next to sealed data
    await MeshCheckpointer(redis, prefix=prefix).aput(
        _cfg("t3"), _checkpoint({"msg": "plain"}), {"step": 0}, {"msg": 1}
    )
    plain = await rotated.aget_tuple(_cfg("t3"))
    assert plain is not None and plain.checkpoint["channel_values"] == {"msg": "plain"}


# -- run event log ---------------------------------------------------------------------------
def _event(run_id: str, seq: int, final: bool = False) -> types_pb2.RunEvent:
    ev = types_pb2.RunEvent(run_id=run_id, seq=seq, mode="custom")
    ev.data.string_value = MARK.decode()
    if final:
        ev.mode = "lifecycle"
        ev.lifecycle.kind = types_pb2.LIFECYCLE_KIND_ENDED
    return ev


async def test_run_events_sealed_per_run(infra: LocalServers, prefix: str) -> None:
    nc = await connect_nats(infra.nats_url, "codec-test")
    try:
        names = NatsNames(prefix)
        writer = RunEventLog(nc, names, codec=OLD, max_age=600)
        await writer.ensure_stream()
        last = 0
        for seq in (1, 2):
            last = await writer.append(_event("r1", seq, seq == 2), expected=last, writer="w")
        raw = await nc.jetstream().get_msg(names.events_stream, seq=last)
        assert raw.data is not None and is_sealed(raw.data) and MARK not in raw.data
        # plain events from before the codec, read by a log with keys
        plain = RunEventLog(nc, names, max_age=600)
        await plain.append(_event("r0", 1, True), expected=0, writer="w")

        reader = RunEventLog(nc, names, codec=ROTATED)
        assert [e.seq async for e in reader.replay("r1")] == [1, 2]
        assert (await reader.position("r1")).final
        assert [e.data.string_value async for e in reader.replay("r0")] == [MARK.decode()]

        for log, reason in (
            (RunEventLog(nc, names, codec=NEW), "PAYLOAD_KEY_UNKNOWN"),
            (plain, "PAYLOAD_KEYS_MISSING"),
        ):
            with pytest.raises(SealedDataError) as info:
                _ = [e async for e in log.replay("r1", idle_timeout=5)]
            _unreadable(info, reason)
            with pytest.raises(SealedDataError):
                await log.last_event("r1")
    finally:
        await nc.close()


# -- run records and schedules -------------------------------------------------------------
async def test_records_and_scheduled_jobs_sealed(redis: aredis.Redis, prefix: str) -> None:
    store = RecordStore(redis, prefix, codec=OLD)
    await store.create_thread("acme", "t1", {"note": MARK.decode()})
    run = RunRecord(
        "r1", "acme", "t1", "a1", spec={"input": {"x": MARK.decode()}}, metadata={"m": 1}
    )
    assert (await store.admit_run(run, "reject")).outcome == "running"
    await store.finish_run(run, "error", error={"message": MARK.decode()})
    jobs = Schedule(redis, prefix, "delayed-runs", codec=OLD)
    await jobs.add("j1", 0, {"spec": MARK.decode()})
    assert not [v for v in await _everything(redis, prefix) if MARK in v]

    rotated = RecordStore(redis, prefix, codec=ROTATED)
    got = await rotated.get_run("acme", "t1", "r1")
    assert got is not None and got.spec["input"]["x"] == MARK.decode()
    assert got.status == "error" and got.error == {"message": MARK.decode()}
    thread = await rotated.get_thread("acme", "t1")
    assert thread is not None and thread.metadata == {"note": MARK.decode()}
    with pytest.raises(SealedDataError) as info:
        await RecordStore(redis, prefix, codec=NEW).get_run("acme", "t1", "r1")
    _unreadable(info, "PAYLOAD_KEY_UNKNOWN")
    # plain records from before the codec
    await RecordStore(redis, prefix).create_thread("acme", "t0", {"plain": True})
    t0 = await rotated.get_thread("acme", "t0")
    assert t0 is not None and t0.metadata == {"plain": True}

    # a job sealed with a key not in the ring is skipped (tried again later), not fatal
    await Schedule(redis, prefix, "delayed-runs", codec=OTHER).add("j2", 0, {"x": 1})
    claimed = await Schedule(redis, prefix, "delayed-runs", codec=ROTATED).claim(visibility=30)
    assert [(j.id, j.payload) for j in claimed] == [("j1", {"spec": MARK.decode()})]
