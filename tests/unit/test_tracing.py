"""Tracing: a trace follows a call gateway -> runtime (gRPC) -> worker (NATS headers),
and is exported over OTLP/HTTP to a receiver on loopback; off means no interceptors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.trace import SpanKind

from mesh_core.errors import NotFoundError
from mesh_core.rpc import MeshServer
from mesh_core.telemetry import (
    TRACE_HEADERS,
    Tracing,
    TracingSettings,
    extract_nats_headers,
    inject_nats_headers,
    setup_tracing,
    trace_metadata,
)
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan

SERVICE = "lgmesh.test.v1.EchoService"


def _ident(b: bytes) -> bytes:
    return b


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as r:
        yield r


def _tracing(receiver: OtlpReceiver, name: str) -> Tracing:
    return setup_tracing(TracingSettings(endpoint=receiver.endpoint, service_name=name))


def _echo_handler(published: list[dict[str, str]]) -> grpc.GenericRpcHandler:
    async def unary(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        # What the runtime does before publishing a task to the NATS queue.
        published.append(inject_nats_headers({"Nats-Msg-Id": "task-1"}))
        return request

    async def stream(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        for i in range(3):
            yield request + bytes([i])

    async def chat(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        async for r in requests:
            yield r.upper()

    async def missing(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise NotFoundError("no such thread")

    async def broken(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        raise RuntimeError("boom")

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, _ident, _ident),
            "Stream": grpc.unary_stream_rpc_method_handler(stream, _ident, _ident),
            "Chat": grpc.stream_stream_rpc_method_handler(chat, _ident, _ident),
            "Missing": grpc.unary_unary_rpc_method_handler(missing, _ident, _ident),
            "Broken": grpc.unary_unary_rpc_method_handler(broken, _ident, _ident),
        },
    )


def _by_name(spans: list[ReceivedSpan], name: str, service: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name and s.service == service]
    assert len(found) == 1, (name, service, [(s.name, s.service) for s in spans])
    return found[0]


async def test_trace_follows_grpc_and_nats_hops_to_the_otlp_receiver(
    receiver: OtlpReceiver,
) -> None:
    gateway = _tracing(receiver, "test-gateway")
    runtime = _tracing(receiver, "test-runtime")
    worker = _tracing(receiver, "test-worker")
    published: list[dict[str, str]] = []
    server = MeshServer("runtime", "127.0.0.1:0", interceptors=runtime.server_interceptors())
    server.add(
        lambda _s, srv: srv.add_generic_rpc_handlers((_echo_handler(published),)), None, SERVICE
    )
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(
            f"127.0.0.1:{port}", interceptors=gateway.client_interceptors()
        ) as channel:
            unary = channel.unary_unary(f"/{SERVICE}/Unary", _ident, _ident)
            stream = channel.unary_stream(f"/{SERVICE}/Stream", _ident, _ident)
            chat = channel.stream_stream(f"/{SERVICE}/Chat", _ident, _ident)
            missing = channel.unary_unary(f"/{SERVICE}/Missing", _ident, _ident)
            broken = channel.unary_unary(f"/{SERVICE}/Broken", _ident, _ident)
            health = health_pb2_grpc.HealthStub(channel)
            with gateway.start_span("gateway StreamRun", kind=SpanKind.SERVER) as root:
                root_trace = format(root.get_span_context().trace_id, "032x")
                assert await unary(b"hi", metadata=(("x-tenant", "t1"),)) == b"hi"
                assert [m async for m in stream(b"s")] == [b"s\x00", b"s\x01", b"s\x02"]

                async def two() -> AsyncIterator[bytes]:
                    yield b"a"
                    yield b"b"

                assert [m async for m in chat(two())] == [b"A", b"B"]
                with pytest.raises(grpc.aio.AioRpcError) as not_found:
                    await missing(b"")
                assert not_found.value.code() is grpc.StatusCode.NOT_FOUND
                with pytest.raises(grpc.aio.AioRpcError) as internal:
                    await broken(b"")
                assert internal.value.code() is grpc.StatusCode.INTERNAL
                await health.Check(health_pb2.HealthCheckRequest(service=""))
    finally:
        await server.stop(0)

    # The worker side: pulls the task, continues the trace from the message headers.
    assert len(published) == 1
    assert published[0]["Nats-Msg-Id"] == "task-1"
    assert published[0]["traceparent"].split("-")[1] == root_trace
    with worker.start_span("worker task", parent_headers=published[0], kind=SpanKind.CONSUMER):
        pass

    expected = 12  # root + 5 client + 5 server + worker; health checks are not traced
    spans = await asyncio.to_thread(receiver.wait_for, lambda s: len(s) >= expected)
    for t in (gateway, runtime, worker):
        t.shutdown()
    assert len(receiver.spans) == expected, [(s.name, s.service) for s in receiver.spans]
    assert {s.trace_id for s in spans} == {root_trace}
    assert not any("grpc.health" in s.name for s in spans)

    root_span = _by_name(spans, "gateway StreamRun", "test-gateway")
    assert root_span.parent_span_id == ""
    for method in ("Unary", "Stream", "Chat", "Missing", "Broken"):
        name = f"{SERVICE}/{method}"
        client = _by_name(spans, name, "test-gateway")
        srv = _by_name(spans, name, "test-runtime")
        assert (client.kind, srv.kind) == ("CLIENT", "SERVER")
        assert client.parent_span_id == root_span.span_id
        assert srv.parent_span_id == client.span_id
        assert srv.attributes["rpc.system"] == "grpc"
        assert srv.attributes["rpc.method"] == method
    codes = {
        m: (
            _by_name(spans, f"{SERVICE}/{m}", "test-gateway"),
            _by_name(spans, f"{SERVICE}/{m}", "test-runtime"),
        )
        for m in ("Unary", "Missing", "Broken")
    }
    assert codes["Unary"][0].attributes["rpc.grpc.status_code"] == 0
    assert codes["Unary"][1].status == "UNSET"
    # NOT_FOUND: an error for the client, not for the server (OTel semantic conventions).
    assert codes["Missing"][0].attributes["rpc.grpc.status_code"] == 5
    assert codes["Missing"][0].status == "ERROR"
    assert codes["Missing"][1].attributes["rpc.grpc.status_code"] == 5
    assert codes["Missing"][1].status == "UNSET"
    assert codes["Broken"][1].attributes["rpc.grpc.status_code"] == 13
    assert codes["Broken"][1].status == "ERROR"

    worker_span = _by_name(spans, "worker task", "test-worker")
    unary_server = _by_name(spans, f"{SERVICE}/Unary", "test-runtime")
    assert worker_span.kind == "CONSUMER"
    assert worker_span.parent_span_id == unary_server.span_id


async def test_disabled_tracing_adds_nothing() -> None:
    tracing = setup_tracing(TracingSettings(endpoint=None))
    assert not tracing.enabled
    assert tracing.server_interceptors() == []
    assert tracing.client_interceptors() == []
    assert isinstance(tracing.tracer, trace.NoOpTracer)
    with tracing.start_span("x", parent_headers={"traceparent": "garbage"}) as span:
        assert not span.is_recording()
        assert inject_nats_headers({"a": "b"}) == {"a": "b"}
    assert tracing.force_flush() is True
    tracing.shutdown()


def test_settings_from_env() -> None:
    off = TracingSettings.from_env("gateway", {"OTEL_EXPORTER_OTLP_ENDPOINT": " "})
    assert off.endpoint is None and off.traces_url is None
    assert off.service_name == "lgmesh-gateway"
    on = TracingSettings.from_env(
        "runtime",
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "HOSTNAME": "runtime-owner-0",
        },
    )
    assert on.traces_url == "http://collector:4318/v1/traces"
    assert (on.sample_ratio, on.instance_id) == (0.25, "runtime-owner-0")
    with pytest.raises(ValueError, match="OTEL_TRACES_SAMPLER_ARG"):
        TracingSettings.from_env("x", {"OTEL_TRACES_SAMPLER_ARG": "2"})


def test_nats_header_roundtrip_and_bad_input(receiver: OtlpReceiver) -> None:
    tracing = _tracing(receiver, "test-roundtrip")
    try:
        assert inject_nats_headers() == {}  # no current span: nothing to carry
        assert trace_metadata() == ()
        with tracing.start_span("publish") as span:
            headers = inject_nats_headers({"Nats-Msg-Id": "m"})
            sent = span.get_span_context()
            assert trace_metadata() == (("traceparent", headers["traceparent"]),)
        assert set(headers) == {"Nats-Msg-Id", "traceparent"}
        got = trace.get_current_span(extract_nats_headers(headers)).get_span_context()
        assert (got.trace_id, got.span_id, got.is_remote) == (sent.trace_id, sent.span_id, True)
        # Header names are case-insensitive in transit; junk is ignored, not an error.
        upper = {"TraceParent": headers["traceparent"]}
        assert trace.get_current_span(extract_nats_headers(upper)).get_span_context() == got
        for junk in (None, {}, {"traceparent": "00-zz-yy-01"}, {"other": "1"}):
            ctx = trace.get_current_span(extract_nats_headers(junk)).get_span_context()
            assert not ctx.is_valid
        assert set(TRACE_HEADERS) == {"traceparent", "tracestate"}
    finally:
        tracing.shutdown()
    spans = receiver.wait_for(lambda s: any(x.name == "publish" for x in s))
    assert [s.service for s in spans if s.name == "publish"] == ["test-roundtrip"]
