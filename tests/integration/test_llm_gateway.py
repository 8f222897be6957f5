"""The LLM gateway against a real OpenAI-compatible HTTP server process and real Redis.

The stub (``python -m tests.support.openai_stub``) is told per model to
delay, drop the connection, answer 429 with Retry-After, or 500; it counts hits.
Each test uses its own model names, so one stub process serves the whole module.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from lgmesh.llm.v1 import llm_pb2, llm_pb2_grpc

from llm_gateway_svc import LlmGatewayServer, LlmGatewaySettings
from llm_gateway_svc.store import RedisLlmStore
from mesh_core.config import InfraSettings
from tests.helpers import assert_eventually
from tests.support.llm_processes import LlmProcess, start_openai_stub

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stub() -> Iterator[LlmProcess]:
    proc = start_openai_stub()
    try:
        yield proc
    finally:
        proc.terminate()


def _models() -> tuple[str, str]:
    tag = uuid.uuid4().hex[:8]
    return f"primary-{tag}", f"fallback-{tag}"


def _settings(
    stub: LlmProcess, infra: InfraSettings, primary: str, fallback: str, **extra: Any
) -> LlmGatewaySettings:
    retry = extra.pop("retry", {"max_attempts": 3, "base_s": 0.05, "cap_s": 0.2})
    breaker = extra.pop("breaker", {"failure_threshold": 20, "reset_s": 10})
    doc: dict[str, Any] = {
        "providers": {
            "stub": {
                "type": "openai",
                "base_url": stub.base_url,
                "timeout_s": 10,
                "retry": retry,
                "breaker": breaker,
            },
        },
        "routes": {"m": [f"stub/{primary}", f"stub/{fallback}"], "solo": [f"stub/{primary}"]},
    }
    doc.update(extra)
    return LlmGatewaySettings.from_mapping(doc, env={}, infra=infra, port=0)


@pytest.fixture
async def gateway_factory(infra_settings: InfraSettings) -> AsyncIterator[Any]:
    servers: list[LlmGatewayServer] = []
    channels: list[grpc.aio.Channel] = []

    async def make(settings: LlmGatewaySettings) -> llm_pb2_grpc.LlmServiceStub:
        server = LlmGatewayServer(settings)
        await server.start()
        servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}")
        channels.append(channel)
        return llm_pb2_grpc.LlmServiceStub(channel)

    yield make
    for ch in channels:
        await ch.close()
    for s in servers:
        await s.stop(grace=0)


def _request(model: str = "m", text: str = "hello there", **kw: Any) -> llm_pb2.GenerateRequest:
    return llm_pb2.GenerateRequest(
        model=model, messages=[llm_pb2.ChatMessage(role=llm_pb2.ROLE_USER, content=text)], **kw
    )


def _error_info(err: grpc.aio.AioRpcError) -> tuple[error_details_pb2.ErrorInfo, float | None]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "status without details"
    info, retry = error_details_pb2.ErrorInfo(), None
    for d in status.details:
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            d.Unpack(info)
        if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            ri = error_details_pb2.RetryInfo()
            d.Unpack(ri)
            retry = ri.retry_delay.ToNanoseconds() / 1e9
    return info, retry


async def test_retries_429_honouring_retry_after_then_500_then_succeeds(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"status": 429, "retry_after": 0.4}, {"status": 500}])
    client = await gateway_factory(_settings(stub, infra_settings, primary, fallback))
    resp = await client.Generate(_request(), timeout=10)
    assert resp.message.content == "echo: hello there"
    assert (resp.info.provider_model, resp.info.attempts) == (primary, 3)
    arrivals = stub.stats()["arrivals"][primary]
    assert len(arrivals) == 3
    assert arrivals[1] - arrivals[0] >= 0.39  # Retry-After honoured
    assert arrivals[2] - arrivals[1] < 0.4  # then jittered backoff (base 0.05)
    assert stub.hits(fallback) == 0


async def test_dropped_connection_is_retried(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"drop": True}])
    client = await gateway_factory(_settings(stub, infra_settings, primary, fallback))
    resp = await client.Generate(_request(), timeout=10)
    assert resp.info.attempts == 2 and stub.hits(primary) == 2


async def test_fallback_model_used_when_primary_keeps_failing(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"status": 500}], repeat=True)
    client = await gateway_factory(_settings(stub, infra_settings, primary, fallback))
    resp = await client.Generate(_request(), timeout=10)
    assert resp.info.provider_model == fallback
    assert stub.hits(primary) == 3 and stub.hits(fallback) == 1
    chunks = [
        c
        async for c in client.StreamGenerate(
            llm_pb2.StreamGenerateRequest(model="m", messages=_request().messages), timeout=10
        )
    ]
    assert chunks[-1].info.provider_model == fallback


async def test_gives_up_with_unavailable_and_details(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"status": 503}], repeat=True)
    stub.add_faults(fallback, [{"status": 502}], repeat=True)
    client = await gateway_factory(_settings(stub, infra_settings, primary, fallback))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(_request(), timeout=10)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    info, _ = _error_info(exc.value)
    assert info.reason == "UPSTREAM_UNAVAILABLE"
    assert info.metadata["attempts"] == "6" and info.metadata["last_error"] == "http_502"
    assert stub.hits(primary) == 3 and stub.hits(fallback) == 3


async def test_circuit_breaker_fails_fast_once_open(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"status": 500}], repeat=True)
    settings = _settings(
        stub,
        infra_settings,
        primary,
        fallback,
        routes={"solo": [f"stub/{primary}"], "other": [f"stub/{fallback}"]},
        breaker={"failure_threshold": 3, "reset_s": 30},
    )
    client = await gateway_factory(settings)
    with pytest.raises(grpc.aio.AioRpcError):
        await client.Generate(_request("solo"), timeout=10)
    assert stub.hits(primary) == 3
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(_request("solo"), timeout=10)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    info, _ = _error_info(exc.value)
    assert info.metadata["last_error"] == f"stub/{primary}:circuit_open"
    assert stub.hits(primary) == 3  # the open circuit kept the call away
    # The breaker is the model's, not the provider's: a sibling model still answers.
    resp = await client.Generate(_request("other"), timeout=10)
    assert resp.info.provider_model == fallback


async def test_slow_provider_stops_at_the_callers_deadline(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"delay": 3.0}], repeat=True)
    client = await gateway_factory(
        _settings(stub, infra_settings, primary, fallback, routes={"solo": [f"stub/{primary}"]})
    )
    t0 = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(_request("solo"), timeout=1.0)
    elapsed = time.monotonic() - t0
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert elapsed < 1.5
    info, _ = _error_info(exc.value)  # the gateway's own status, with details
    assert info.reason == "UPSTREAM_DEADLINE" and info.metadata["last_error"] == "timeout"


async def test_backoff_never_sleeps_past_the_deadline(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"status": 500}], repeat=True)
    settings = _settings(
        stub,
        infra_settings,
        primary,
        fallback,
        routes={"solo": [f"stub/{primary}"]},
        retry={"max_attempts": 100, "base_s": 0.1, "cap_s": 0.3},
    )
    client = await gateway_factory(settings)
    t0 = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(_request("solo"), timeout=1.2)
    assert time.monotonic() - t0 < 1.25
    assert exc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    info, _ = _error_info(exc.value)
    assert int(info.metadata["attempts"]) >= 3 and info.metadata["last_error"] == "http_500"
    assert stub.hits(primary) == int(info.metadata["attempts"])


async def test_provider_429_falls_back_then_is_resource_exhausted_with_retry_info(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"status": 429, "retry_after": 30}], repeat=True)
    client = await gateway_factory(_settings(stub, infra_settings, primary, fallback))
    t0 = time.monotonic()
    resp = await client.Generate(_request("m"), timeout=5)  # no waiting 30 s: next target
    assert resp.info.provider_model == fallback and time.monotonic() - t0 < 1.0
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(_request("solo"), timeout=5)
    # A quota problem, not an outage: RESOURCE_EXHAUSTED, the provider's words, RetryInfo.
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "injected" in (exc.value.details() or "")
    info, retry = _error_info(exc.value)
    assert info.reason == "UPSTREAM_RATE_LIMITED"
    assert retry is not None and 25 < retry <= 30  # what is left of the Retry-After
    assert stub.hits(primary) == 1  # cooling down: the second call did not knock again


async def test_429s_do_not_open_the_breaker(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"status": 429}] * 4)
    settings = _settings(
        stub,
        infra_settings,
        primary,
        fallback,
        retry={"max_attempts": 2, "base_s": 0.01, "cap_s": 0.02},
        breaker={"failure_threshold": 2, "reset_s": 30},
    )
    client = await gateway_factory(settings)
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await client.Generate(_request("solo"), timeout=5)
        assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        _, retry = _error_info(exc.value)
        assert retry is not None  # no Retry-After given: the gateway's own backoff hint
    resp = await client.Generate(_request("solo"), timeout=5)  # quota back, circuit closed
    assert resp.info.provider_model == primary and stub.hits(primary) == 5


async def test_stream_token_chunks_and_retry_before_first_chunk(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"status": 500}])
    client = await gateway_factory(_settings(stub, infra_settings, primary, fallback))
    req = llm_pb2.StreamGenerateRequest(
        model="m", messages=_request(text="one two three four").messages
    )
    chunks = [c async for c in client.StreamGenerate(req, timeout=10)]
    assert [c.content_delta for c in chunks[:-1]] == ["echo: ", "one ", "two ", "three ", "four"]
    last = chunks[-1]
    assert last.last and last.finish_reason == llm_pb2.FINISH_REASON_STOP
    assert last.usage.input_tokens == 4 and last.usage.output_tokens == 5
    assert last.info.attempts == 2 and stub.hits(primary) == 2


async def test_stream_broken_after_first_chunk_is_unavailable(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    stub.add_faults(primary, [{"drop_after_chunks": 3}])
    client = await gateway_factory(_settings(stub, infra_settings, primary, fallback))
    req = llm_pb2.StreamGenerateRequest(
        model="m", messages=_request(text="one two three four").messages
    )
    got: list[str] = []
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        async for c in client.StreamGenerate(req, timeout=10):
            got.append(c.content_delta)
    assert exc.value.code() == grpc.StatusCode.UNAVAILABLE
    assert got == ["echo: ", "one "]
    info, _ = _error_info(exc.value)
    assert info.reason == "UPSTREAM_STREAM_BROKEN"
    assert stub.hits(fallback) == 0  # nothing is re-sent once the caller has chunks


async def test_idempotency_key_replayed_does_not_reach_provider(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    settings = _settings(stub, infra_settings, primary, fallback)
    client = await gateway_factory(settings)
    other_replica = await gateway_factory(settings)
    key = uuid.uuid4().hex
    first = await client.Generate(_request(idempotency_key=key), timeout=10)
    again = await other_replica.Generate(_request(idempotency_key=key), timeout=10)
    streamed = [
        c
        async for c in client.StreamGenerate(
            llm_pb2.StreamGenerateRequest(
                model="m", messages=_request().messages, idempotency_key=key
            ),
            timeout=10,
        )
    ]
    assert stub.hits(primary) == 1
    assert again.info.replayed and not first.info.replayed
    assert again.message == first.message and again.usage == first.usage
    assert "".join(c.content_delta for c in streamed) == first.message.content
    assert streamed[-1].info.replayed
    store = RedisLlmStore.from_url(infra_settings.redis_url, infra_settings.prefix)
    usage = await store.usage("default")
    await store.aclose()
    assert usage["requests"] == 1  # the replays spent nothing


async def test_rate_limit_resource_exhausted_with_retry_info_and_usage(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    settings = _settings(
        stub,
        infra_settings,
        primary,
        fallback,
        limits={"window_s": 60, "tenants": {"acme": {"rpm": 2}}},
    )
    client = await gateway_factory(settings)
    md = (("x-lgmesh-tenant", "acme"),)
    for _ in range(2):
        await client.Generate(_request(), timeout=10, metadata=md)
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(_request(), timeout=10, metadata=md)
    assert exc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, retry = _error_info(exc.value)
    assert info.reason == "RATE_LIMITED" and info.metadata["limit"] == "tenant:acme:rpm"
    assert retry is not None and 0 < retry <= 60
    await client.Generate(_request(), timeout=10)  # tenant "default" has no limit
    assert stub.hits(primary) == 3
    store = RedisLlmStore.from_url(infra_settings.redis_url, infra_settings.prefix)
    want = {"requests": 2, "input_tokens": 4, "output_tokens": 6}  # "echo: hello there"

    async def accounted() -> bool:
        usage = await store.usage("acme")
        return {k: usage.get(k) for k in want} == want

    try:
        await assert_eventually(accounted, timeout=5, message="usage accounted")
    finally:
        await store.aclose()


async def test_response_cache_answers_identical_requests(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    client = await gateway_factory(
        _settings(stub, infra_settings, primary, fallback, cache={"ttl_s": 30})
    )
    a = await client.Generate(_request(), timeout=10)
    b = await client.Generate(_request(), timeout=10)
    c = await client.Generate(_request(bypass_cache=True), timeout=10)
    assert b.info.cached and not a.info.cached and not c.info.cached
    assert b.message.content == a.message.content
    assert stub.hits(primary) == 2


async def test_bad_requests_get_clear_statuses(
    stub: LlmProcess, infra_settings: InfraSettings, gateway_factory: Any
) -> None:
    primary, fallback = _models()
    client = await gateway_factory(_settings(stub, infra_settings, primary, fallback))
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(_request(model="nope"), timeout=5)
    assert exc.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(llm_pb2.GenerateRequest(model="m"), timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(_request(), timeout=5, metadata=(("x-lgmesh-tenant", "no spaces"),))
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    bad_deadline = _request()
    bad_deadline.deadline.nanos = -1  # outside Timestamp's range: not INTERNAL
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await client.Generate(bad_deadline, timeout=5)
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "deadline" in (exc.value.details() or "")
    models = await client.ListModels(llm_pb2.ListModelsRequest(), timeout=5)
    assert {m.alias: list(m.targets) for m in models.models}["m"] == [
        f"stub/{primary}",
        f"stub/{fallback}",
    ]
    assert stub.hits(primary) == 0
