"""Lua scripts over the lean pipelined connections, against a real Valkey."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aredis
from redis.exceptions import ConnectionError, ResponseError

from mesh_core.adapters.redis.client import MeshRedis, connect_redis
from mesh_core.localservers import LocalServers

pytestmark = pytest.mark.integration

ECHO = "return {KEYS[1], ARGV[1]}"
INCR = "return redis.call('INCR', KEYS[1])"


async def test_scripts_run_pipelined_in_order(infra: LocalServers, prefix: str) -> None:
    client = connect_redis(infra.redis_url)
    assert isinstance(client, MeshRedis) and client.lean is not None
    try:
        incr = client.register_script(INCR)
        got = await asyncio.gather(*(incr(keys=[f"{prefix}:n"]) for _ in range(500)))
        assert sorted(got) == list(range(1, 501))
        echo = client.register_script(ECHO)
        big = b"x" * (4 * 1024 * 1024)
        key, value = await echo(keys=[f"{prefix}:k"], args=[big])
        assert key == f"{prefix}:k".encode() and value == big
        with pytest.raises(ResponseError, match="boom"):
            await client.register_script("return redis.error_reply('boom')")()
        # the connections keep working after an error reply
        assert await incr(keys=[f"{prefix}:n"]) == 501
        assert int(await client.get(f"{prefix}:n")) == 501  # the rest is redis-py's
    finally:
        await client.aclose()


async def test_a_flushed_script_is_loaded_again(infra: LocalServers, prefix: str) -> None:
    client = connect_redis(infra.redis_url)
    admin = aredis.Redis.from_url(infra.redis_url)
    try:
        echo = client.register_script(ECHO)
        assert await echo(keys=["a"], args=["1"]) == [b"a", b"1"]
        await admin.script_flush()
        assert await echo(keys=["b"], args=["2"]) == [b"b", b"2"]
    finally:
        await client.aclose()
        await admin.aclose()


async def test_a_restarted_server_fails_calls_in_flight_then_works_again(
    fresh_infra: LocalServers,
) -> None:
    client = connect_redis(fresh_infra.redis_url)
    try:
        incr = client.register_script(INCR)
        assert await incr(keys=["n"]) == 1
        await asyncio.to_thread(fresh_infra.redis.stop)
        with pytest.raises(ConnectionError):
            await incr(keys=["n"])
        await asyncio.to_thread(fresh_infra.redis.start)
        assert await incr(keys=["m"]) == 1  # a new connection, the script loaded again
    finally:
        await client.aclose()
