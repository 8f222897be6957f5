"""The LLM gateway's stored answers with the payload codec, on a real Valkey: the answer
kept for an idempotency key and the response cache are sealed (bound to their own key),
read back through the gateway, do not open under another key (cache: a miss, logged
once; idempotency: DATA_LOSS, never a second upstream call), plain answers from before
the codec still read, and a replica without keys fails clearly on sealed ones."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest
import redis.asyncio as aredis
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from lgmesh.llm.v1 import llm_pb2, llm_pb2_grpc

from llm_gateway_svc import LlmGatewayServer, LlmGatewaySettings, store
from mesh_core.adapters.redis.keys import RedisKeys
from mesh_core.config import InfraSettings
from mesh_core.logs import RateLimitedLog
from mesh_core.security import PayloadCodec, is_sealed

pytestmark = pytest.mark.integration

KEY = os.urandom(32)
CODEC = PayloadCodec([KEY])
Client = llm_pb2_grpc.LlmServiceStub
Factory = Callable[[PayloadCodec | None], Awaitable[Client]]

DOC = {
    "providers": {"scripted": {"type": "scripted", "rules": [{"reply": "You said: {last_user}"}]}},
    "routes": {"m": ["scripted/any"]},
    "cache": {"ttl_s": 60},
}


@pytest.fixture
async def gateway(infra_settings: InfraSettings) -> AsyncIterator[Factory]:
    """Replicas of one mesh (same Redis and prefix), each with the codec given (or none)."""
    servers: list[LlmGatewayServer] = []
    channels: list[grpc.aio.Channel] = []

    async def make(codec: PayloadCodec | None) -> Client:
        settings = LlmGatewaySettings.from_mapping(
            DOC, env={}, infra=infra_settings, port=0, payload_codec=codec
        )
        server = LlmGatewayServer(settings)
        await server.start()
        servers.append(server)
        channels.append(grpc.aio.insecure_channel(f"127.0.0.1:{server.port}"))
        return Client(channels[-1])

    yield make
    for ch in channels:
        await ch.close()
    for s in servers:
        await s.stop(grace=0)


def _request(text: str, **kw: object) -> llm_pb2.GenerateRequest:
    msg = llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=text)
    return llm_pb2.GenerateRequest(model="m", messages=[msg], **kw)  # type: ignore[arg-type]


def _marker() -> str:
    return f"MARK-{uuid.uuid4().hex}"


def _reason(err: grpc.aio.AioRpcError) -> str:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status details"
    info = error_details_pb2.ErrorInfo()
    for d in status.details:
        if d.Is(info.DESCRIPTOR):
            d.Unpack(info)
    return info.reason


async def _data_loss(call: Awaitable[object], reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    assert info.value.code() == grpc.StatusCode.DATA_LOSS, info.value
    assert _reason(info.value) == reason
    assert "idempotency key" in (info.value.details() or "")


async def _cache_keys(infra_redis: aredis.Redis, prefix: str) -> list[bytes]:
    return [k async for k in infra_redis.scan_iter(match=f"{prefix}:llm:cache:*")]


async def test_stored_idempotent_answer_is_sealed_bound_to_its_key(
    gateway: Factory, infra_redis: aredis.Redis, prefix: str
) -> None:
    sealed, other_replica, keyless = await gateway(CODEC), await gateway(CODEC), await gateway(None)
    mark = _marker()
    first = await sealed.Generate(_request(mark, idempotency_key="k1", bypass_cache=True))
    assert first.message.content == f"You said: {mark}"
    keys = RedisKeys(prefix)
    raw = await infra_redis.get(keys.llm_idempotency("default:k1"))
    assert raw is not None and mark.encode() not in raw
    digest, _, payload = raw.removeprefix(b"D|").partition(b"|")
    assert raw.startswith(b"D|") and len(digest) >= 32 and is_sealed(payload)  # digest plain

    again = await other_replica.Generate(_request(mark, idempotency_key="k1", bypass_cache=True))
    assert again.info.replayed and again.message == first.message
    streamed = [
        c
        async for c in sealed.StreamGenerate(
            llm_pb2.StreamGenerateRequest(
                model="m", messages=_request(mark).messages, idempotency_key="k1"
            )
        )
    ]
    assert "".join(c.content_delta for c in streamed) == first.message.content

    # Copied to another key (same request, so the plain digest matches): it does not
    # open there, and the request is not run again (the copy is left as it is).
    await infra_redis.set(keys.llm_idempotency("default:k2"), raw)
    await _data_loss(
        sealed.Generate(_request(mark, idempotency_key="k2", bypass_cache=True)),
        "PAYLOAD_UNREADABLE",
    )
    stream = sealed.StreamGenerate(
        llm_pb2.StreamGenerateRequest(
            model="m", messages=_request(mark).messages, idempotency_key="k2"
        )
    )
    await _data_loss(stream.read(), "PAYLOAD_UNREADABLE")
    assert await infra_redis.get(keys.llm_idempotency("default:k2")) == raw
    # The copy reused for another request: refused as a reused key (the digests differ),
    # whether or not the stored answer opens here.
    with pytest.raises(grpc.aio.AioRpcError) as reused:
        await sealed.Generate(_request("other", idempotency_key="k2", bypass_cache=True))
    assert reused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _reason(reused.value) == "IDEMPOTENCY_KEY_REUSED"
    # Another tenant's key of the same name: not the same place either.
    await infra_redis.set(keys.llm_idempotency("globex:k1"), raw)
    md = (("x-lgmesh-tenant", "globex"),)
    await _data_loss(
        sealed.Generate(_request(mark, idempotency_key="k1", bypass_cache=True), metadata=md),
        "PAYLOAD_UNREADABLE",
    )
    # A replica without keys: a clear DATA_LOSS too, never a re-run.
    await _data_loss(
        keyless.Generate(_request(mark, idempotency_key="k1", bypass_cache=True)),
        "PAYLOAD_KEYS_MISSING",
    )
    assert await infra_redis.get(keys.llm_idempotency("default:k1")) == raw


async def test_cached_answer_is_sealed_and_a_copy_is_a_miss(
    gateway: Factory,
    infra_redis: aredis.Redis,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sealed, keyless = await gateway(CODEC), await gateway(None)
    mark, other = _marker(), _marker()
    first = await sealed.Generate(_request(mark))
    hit = await sealed.Generate(_request(mark))
    assert hit.info.cached and hit.message.content == first.message.content == f"You said: {mark}"
    [key] = await _cache_keys(infra_redis, prefix)
    raw = await infra_redis.get(key)
    assert raw is not None and is_sealed(raw) and mark.encode() not in raw

    # The other request's cache entry replaced by the first one's: a miss, not its answer.
    await sealed.Generate(_request(other))
    [other_key] = [k for k in await _cache_keys(infra_redis, prefix) if k != key]
    await infra_redis.set(other_key, raw)
    monkeypatch.setattr(store, "_unreadable", RateLimitedLog(store.log, interval=60.0, burst=1))
    with caplog.at_level(logging.WARNING, logger=store.log.name):
        moved = await sealed.Generate(_request(other))
        assert not moved.info.cached and moved.message.content == f"You said: {other}"
        refreshed = await infra_redis.get(other_key)  # the miss stored a fresh answer, which opens
        assert refreshed is not None and refreshed != raw and is_sealed(refreshed)
        assert (await sealed.Generate(_request(other))).info.cached
        # A replica without keys: also a miss (the answer comes from upstream).
        plain = await keyless.Generate(_request(mark))
        assert not plain.info.cached and plain.message.content == first.message.content
    lines = [r.getMessage() for r in caplog.records if r.name == store.log.name]
    assert len(lines) == 1, lines  # rate-limited: one line for both
    assert "cache miss" in lines[0] and "PAYLOAD_" in lines[0]
    assert mark not in lines[0] and other not in lines[0] and "MARK" not in lines[0]


async def test_answers_stored_before_the_codec_still_read(
    gateway: Factory, infra_redis: aredis.Redis, prefix: str
) -> None:
    before, after = await gateway(None), await gateway(CODEC)
    mark = _marker()
    first = await before.Generate(_request(mark, idempotency_key="old"))
    raw = await infra_redis.get(RedisKeys(prefix).llm_idempotency("default:old"))
    assert raw is not None and mark.encode() in raw  # stored as it is
    [key] = await _cache_keys(infra_redis, prefix)
    assert mark.encode() in (await infra_redis.get(key) or b"")

    replay = await after.Generate(_request(mark, idempotency_key="old"))
    assert replay.info.replayed and replay.message == first.message
    cached = await after.Generate(_request(mark))
    assert cached.info.cached and cached.message.content == first.message.content
