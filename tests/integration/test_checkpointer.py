"""MeshCheckpointer on the real Valkey: fencing, atomicity, TTL, deletion, lifecycle."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aredis
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.base.id import uuid6

from mesh_core.adapters.redis import MeshCheckpointer, RedisKeys
from mesh_core.errors import StaleOwnerError
from mesh_core.localservers import LocalServers

pytestmark = pytest.mark.integration


def _checkpoint(values: dict[str, Any]) -> Checkpoint:
    return Checkpoint(
        v=1,
        id=str(uuid6(clock_seq=-1)),
        ts="2026-01-01T00:00:00+00:00",
        channel_values=values,
        channel_versions=dict.fromkeys(values, 1),
        versions_seen={},
        updated_channels=None,
    )


def _cfg(tid: str, token: int | None = None, cid: str | None = None) -> RunnableConfig:
    conf: dict[str, Any] = {"thread_id": tid, "checkpoint_ns": ""}
    if token is not None:
        conf["fencing_token"] = token
    if cid is not None:
        conf["checkpoint_id"] = cid
    return {"configurable": conf}


@pytest.fixture
async def client(infra: LocalServers) -> AsyncIterator[aredis.Redis]:
    c = aredis.Redis.from_url(infra.redis_url)
    try:
        yield c
    finally:
        await c.aclose()


@pytest.fixture
async def saver(client: aredis.Redis, prefix: str) -> MeshCheckpointer:
    s = MeshCheckpointer(client, prefix=prefix)
    await s.asetup()
    return s


async def _thread_keys(client: aredis.Redis, prefix: str, tid: str) -> list[bytes]:
    pattern = f"{prefix}:{{{tid}}}:*"
    return sorted([k async for k in client.scan_iter(match=pattern, count=1000)])


# -- fencing ---------------------------------------------------------------------------------


async def test_lower_token_is_rejected_and_state_is_intact(saver: MeshCheckpointer) -> None:
    tid = "fenced"
    first = await saver.aput(_cfg(tid, 5), _checkpoint({"x": "v1"}), {"step": 0}, {"x": 1})
    await saver.aput_writes({**first}, [("x", "pending")], "task-1")
    before = await saver.aget_tuple(_cfg(tid))
    assert before is not None

    await saver.abump_fence(tid, 7)  # a new owner took the thread
    assert await saver.aget_fence(tid) == 7

    stale_cfg = _cfg(tid, 5, cid=first["configurable"]["checkpoint_id"])
    with pytest.raises(StaleOwnerError) as err:
        await saver.aput(stale_cfg, _checkpoint({"x": "zombie"}), {"step": 1}, {"x": 2})
    assert err.value.metadata["stored_token"] == "7"
    assert err.value.metadata["token"] == "5"
    with pytest.raises(StaleOwnerError):
        await saver.aput_writes(stale_cfg, [("x", "zombie-write")], "task-2")
    with pytest.raises(StaleOwnerError):
        await saver.abump_fence(tid, 6)

    after = await saver.aget_tuple(_cfg(tid))
    assert after is not None
    assert after.checkpoint["id"] == before.checkpoint["id"]
    assert after.checkpoint["channel_values"] == {"x": "v1"}
    assert after.pending_writes == [("task-1", "x", "pending")]
    assert len([t async for t in saver.alist(_cfg(tid))]) == 1
    assert await saver.aget_fence(tid) == 7


async def test_equal_and_higher_tokens_pass_and_no_token_is_unfenced(
    saver: MeshCheckpointer,
) -> None:
    tid = "fence-eq"
    await saver.abump_fence(tid, 7)
    c1 = await saver.aput(_cfg(tid, 7), _checkpoint({"x": 1}), {"step": 0}, {"x": 1})
    assert await saver.aget_fence(tid) == 7
    c2 = await saver.aput(
        _cfg(tid, 9, cid=c1["configurable"]["checkpoint_id"]), _checkpoint({"x": 2}), {}, {"x": 2}
    )
    assert await saver.aget_fence(tid) == 9
    # No token: unfenced (admin writes such as update_state outside a lease).
    await saver.aput_writes(c2, [("x", 3)], "t")
    assert await saver.aget_fence(tid) == 9
    tup = await saver.aget_tuple(_cfg(tid))
    assert tup is not None and tup.pending_writes == [("t", "x", 3)]
    # The token is an ownership detail: it is not copied into checkpoint metadata.
    assert "fencing_token" not in tup.metadata


async def test_tokens_compare_exactly_beyond_float_precision(saver: MeshCheckpointer) -> None:
    tid = "fence-big"
    big = 2**60 + 1
    await saver.abump_fence(tid, big)
    with pytest.raises(StaleOwnerError):
        await saver.aput(_cfg(tid, big - 1), _checkpoint({"x": 1}), {}, {"x": 1})
    await saver.aput(_cfg(tid, big), _checkpoint({"x": 1}), {}, {"x": 1})
    with pytest.raises(StaleOwnerError):
        await saver.abump_fence(tid, 99)  # shorter number, lower value
    assert await saver.aget_fence(tid) == big


async def test_bound_token_applies_when_config_has_none(saver: MeshCheckpointer) -> None:
    tid = "fence-bound"
    await saver.abump_fence(tid, 4)
    with pytest.raises(StaleOwnerError):
        await saver.with_fencing_token(3).aput(_cfg(tid), _checkpoint({"x": 1}), {}, {"x": 1})
    await saver.with_fencing_token(4).aput(_cfg(tid), _checkpoint({"x": 1}), {}, {"x": 1})
    assert await saver.aget_tuple(_cfg(tid)) is not None


# -- one round trip, atomicity ---------------------------------------------------------------


async def test_put_put_writes_and_get_are_one_command_each(
    infra: LocalServers, saver: MeshCheckpointer, client: aredis.Redis
) -> None:
    tid = f"rt-{uuid.uuid4().hex[:8]}"
    sentinel = f"done-{tid}"
    monitor_client = aredis.Redis.from_url(infra.redis_url)
    seen: list[tuple[str, str]] = []
    try:
        async with monitor_client.monitor() as mon:
            stored = await saver.aput(
                _cfg(tid, 3), _checkpoint({"a": [1, 2], "b": "x"}), {"step": 1}, {"a": 1, "b": 1}
            )
            await saver.aput_writes(stored, [("a", [3]), ("b", "y")], "task")
            assert await saver.aget_tuple(_cfg(tid)) is not None
            await client.echo(sentinel)
            while True:
                info = await asyncio.wait_for(mon.next_command(), 10)
                if sentinel in info["command"]:
                    break
                if tid in info["command"]:
                    seen.append((info["client_type"], info["command"].split(" ")[0].upper()))
    finally:
        await monitor_client.aclose()
    from_clients = [cmd for kind, cmd in seen if kind != "lua"]
    assert from_clients == ["EVALSHA", "EVALSHA", "EVALSHA"], seen
    # Everything else ran inside the scripts (atomically).
    assert {cmd for kind, cmd in seen if kind == "lua"} >= {"HSET", "ZADD", "SET", "HSETNX"}


async def test_concurrent_reader_never_sees_half_a_checkpoint(
    saver: MeshCheckpointer, infra: LocalServers, prefix: str
) -> None:
    tid = "atomic"
    reader_client = aredis.Redis.from_url(infra.redis_url)
    reader = MeshCheckpointer(reader_client, prefix=prefix)
    done = asyncio.Event()
    observed: list[int] = []

    async def write() -> None:
        parent: RunnableConfig = _cfg(tid)
        for i in range(60):
            ck = _checkpoint({"a": i, "b": i, "big": "z" * 2000 + str(i)})
            ck["channel_versions"] = {"a": i + 1, "b": i + 1, "big": i + 1}
            parent = await saver.aput(parent, ck, {"step": i}, ck["channel_versions"])
        done.set()

    async def read() -> None:
        while not done.is_set():
            tup = await reader.aget_tuple(_cfg(tid))
            if tup is not None:
                vals = tup.checkpoint["channel_values"]
                assert vals["a"] == vals["b"] and vals["big"].endswith(str(vals["a"]))
                assert tup.metadata["step"] == vals["a"]
                observed.append(vals["a"])

    try:
        await asyncio.gather(write(), read())
    finally:
        await reader_client.aclose()
    assert observed == sorted(observed)
    final = await saver.aget_tuple(_cfg(tid))
    assert final is not None and final.checkpoint["channel_values"]["a"] == 59


# -- TTL, delete_thread ----------------------------------------------------------------------


async def test_ttl_on_every_thread_key_and_refreshed_on_write(
    client: aredis.Redis, prefix: str
) -> None:
    saver = MeshCheckpointer(client, prefix=prefix, ttl=30)
    tid = "ttl"
    stored = await saver.aput(_cfg(tid, 1), _checkpoint({"x": 1}), {"run_id": "r1"}, {"x": 1})
    await saver.aput_writes(stored, [("x", 2)], "t")
    child = {"configurable": {"thread_id": tid, "checkpoint_ns": "sub:1"}}
    await saver.aput(child, _checkpoint({"y": 1}), {}, {"y": 1})
    keys = await _thread_keys(client, prefix, tid)
    assert len(keys) == 9  # fixed key set, all found by the hash tag
    for key in keys:
        ttl = await client.pttl(key)
        assert 0 < ttl <= 30_000, (key, ttl)
    for key in keys:
        await client.pexpire(key, 2_000)
    await saver.aput_writes(stored, [("x", 3)], "t2")  # a write refreshes every key
    for key in keys:
        assert await client.pttl(key) > 25_000, key


async def test_no_ttl_by_default(
    saver: MeshCheckpointer, client: aredis.Redis, prefix: str
) -> None:
    await saver.aput(_cfg("forever", 1), _checkpoint({"x": 1}), {}, {"x": 1})
    for key in await _thread_keys(client, prefix, "forever"):
        assert await client.pttl(key) == -1


async def test_delete_thread_removes_every_key_of_the_thread_only(
    saver: MeshCheckpointer, client: aredis.Redis, prefix: str
) -> None:
    for tid in ("doomed", "kept"):
        root = await saver.aput(_cfg(tid, 2), _checkpoint({"x": 1}), {"run_id": "r"}, {"x": 1})
        await saver.aput_writes(root, [("x", 2)], "t")
        child = {"configurable": {"thread_id": tid, "checkpoint_ns": "sub:1", "fencing_token": 2}}
        await saver.aput(child, _checkpoint({"y": 1}), {}, {"y": 1})
    assert len(await _thread_keys(client, prefix, "doomed")) == 9
    await saver.adelete_thread("doomed")
    assert await _thread_keys(client, prefix, "doomed") == []
    assert await saver.aget_tuple(_cfg("doomed")) is None
    assert len(await _thread_keys(client, prefix, "kept")) == 9
    assert await saver.aget_tuple(_cfg("kept")) is not None


async def test_keys_carry_the_thread_hash_tag_under_the_prefix(
    saver: MeshCheckpointer, client: aredis.Redis, prefix: str
) -> None:
    await saver.aput(_cfg("tagged", 1), _checkpoint({"x": 1}), {}, {"x": 1})
    all_keys = [k.decode() async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
    assert all_keys
    assert all(k.startswith(f"{prefix}:{{tagged}}:") for k in all_keys), all_keys
    assert set(all_keys) <= set(RedisKeys(prefix).checkpoint_keys("tagged").all())


# -- listing across threads, sync API, connection helpers ----------------------------------


async def test_list_without_config_spans_threads(saver: MeshCheckpointer) -> None:
    for tid in ("l1", "l2"):
        await saver.aput(_cfg(tid), _checkpoint({"x": tid}), {"source": "input"}, {"x": 1})
    found = {t.config["configurable"]["thread_id"] async for t in saver.alist(None)}
    assert found == {"l1", "l2"}
    assert len([t async for t in saver.alist(None, limit=1)]) == 1
    assert [t async for t in saver.alist(None, filter={"source": "loop"})] == []


def test_sync_api_and_with_from_conn_string(infra: LocalServers, prefix: str) -> None:
    with MeshCheckpointer.from_conn_string(infra.redis_url, prefix=prefix, ttl=60) as saver:
        saver.bump_fence("sync", 2)
        stored = saver.put(_cfg("sync", 2), _checkpoint({"x": 1}), {"step": 0}, {"x": 1})
        saver.put_writes(stored, [("x", 2)], "t")
        with pytest.raises(StaleOwnerError):
            saver.put(_cfg("sync", 1), _checkpoint({"x": 9}), {}, {"x": 2})
        tup = saver.get_tuple(_cfg("sync"))
        assert tup is not None and tup.pending_writes == [("t", "x", 2)]
        assert [t.checkpoint["id"] for t in saver.list(_cfg("sync"))] == [tup.checkpoint["id"]]
        assert len(list(saver.list(None))) == 1
        saver.delete_thread("sync")
        assert saver.get_tuple(_cfg("sync")) is None
        assert redis.Redis.from_url(infra.redis_url).exists(f"{prefix}:{{sync}}:fence") == 0


async def test_async_with_from_conn_string_preloads_scripts(
    infra: LocalServers, prefix: str
) -> None:
    async with MeshCheckpointer.from_conn_string(infra.redis_url, prefix=prefix) as saver:
        stored = await saver.aput(_cfg("aw", 1), _checkpoint({"x": 1}), {}, {"x": 1})
        assert (await saver.aget_tuple(stored)) is not None
        assert all(await saver.redis.script_exists(saver._ascripts.put.sha))


async def _commands_of_get(infra: LocalServers, saver: MeshCheckpointer, tid: str) -> list[str]:
    """The commands (client's and script's) a get-latest of ``tid`` runs, via MONITOR."""
    sentinel = f"done-{uuid.uuid4().hex}"
    monitor_client = aredis.Redis.from_url(infra.redis_url)
    seen: list[str] = []
    try:
        async with monitor_client.monitor() as mon:
            assert await saver.aget_tuple(_cfg(tid)) is not None
            await saver.redis.echo(sentinel)
            while True:
                info = await asyncio.wait_for(mon.next_command(), 10)
                if sentinel in info["command"]:
                    return seen
                if tid in info["command"] or info["client_type"] == "lua":
                    seen.append(info["command"].split(" ")[0].upper())
    finally:
        await monitor_client.aclose()


async def test_get_latest_does_the_same_work_at_step_200_as_at_step_1(
    infra: LocalServers, saver: MeshCheckpointer
) -> None:
    parent: RunnableConfig = _cfg("deep")
    for i in range(200):
        ck = _checkpoint({"x": i})
        ck["channel_versions"] = {"x": i + 1}
        parent = await saver.aput(parent, ck, {"step": i}, {"x": i + 1})
        if i == 0:
            at_step_1 = await _commands_of_get(infra, saver, "deep")
    at_step_200 = await _commands_of_get(infra, saver, "deep")
    assert at_step_1 == at_step_200, (at_step_1, at_step_200)
    assert at_step_1[0] == "EVALSHA" and "SCAN" not in at_step_1 and "KEYS" not in at_step_1
    tup = await saver.aget_tuple(_cfg("deep"))
    assert tup is not None and tup.checkpoint["channel_values"] == {"x": 199}


async def test_prune_keeps_only_what_the_latest_checkpoints_read(
    saver: MeshCheckpointer, client: aredis.Redis, prefix: str
) -> None:
    parent: RunnableConfig = _cfg("pr")
    for i in range(5):
        ck = _checkpoint({"x": i, "const": "c"})
        ck["channel_versions"] = {"x": i + 1, "const": 1}
        new = {"x": i + 1, "const": 1} if i == 0 else {"x": i + 1}
        parent = await saver.aput(parent, ck, {"step": i, "run_id": f"r{i}"}, new)
        await saver.aput_writes(parent, [("x", i)], f"task{i}")
    keys = RedisKeys(prefix).checkpoint_keys("pr")
    assert await client.hlen(keys.blobs) == 6
    await saver.aprune(["pr"])
    tup = await saver.aget_tuple(_cfg("pr"))
    assert tup is not None and tup.checkpoint["channel_values"] == {"x": 4, "const": "c"}
    assert tup.pending_writes == [("task4", "x", 4)]
    assert await client.hlen(keys.blobs) == 2  # x@5 and const@1
    assert await client.zcard(keys.index) == 1
    assert await client.hlen(keys.writes) == 1 and await client.zcard(keys.writes_index) == 1
    assert await client.zcard(keys.runs_index) == 1
