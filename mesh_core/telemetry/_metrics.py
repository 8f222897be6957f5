"""Prometheus endpoint and the gRPC request metrics every service exports."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server

# Latency buckets (seconds) shared by every histogram of the mesh: 0.5 ms to 60 s.
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
)

GRPC_REQUESTS = Counter(
    "lgmesh_grpc_requests_total",
    "gRPC requests handled, by service, method and status code.",
    ["service", "method", "code"],
)
GRPC_LATENCY = Histogram(
    "lgmesh_grpc_request_seconds",
    "gRPC request latency (for streams: until the stream ends), by service and method.",
    ["service", "method"],
    buckets=(
        0.0005,
        0.001,
        0.0025,
        0.005,
        0.01,
        0.025,
        0.05,
        0.1,
        0.25,
        0.5,
        1,
        2.5,
        5,
        10,
        30,
        60,
    ),
)


def start_metrics_server(
    port: int, host: str = "0.0.0.0", registry: CollectorRegistry = REGISTRY
) -> int:
    """Serve /metrics on ``port`` (0: a free port); returns the bound port."""
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return int(server.server_port)


def _split(method: str) -> tuple[str, str]:
    parts = method.strip("/").split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else ("unknown", method)


class GrpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts requests by method and code and times them."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        service, method = _split(handler_call_details.method)
        if service.startswith("grpc.reflection") or service.startswith("grpc.health"):
            return handler

        def done(context: grpc.aio.ServicerContext, start: float, failed: bool) -> None:
            code = context.code() if hasattr(context, "code") else None
            name = (
                code.name if isinstance(code, grpc.StatusCode) else ("UNKNOWN" if failed else "OK")
            )
            GRPC_REQUESTS.labels(service, method, name).inc()
            GRPC_LATENCY.labels(service, method).observe(time.perf_counter() - start)

        if handler.unary_unary is not None:
            inner = handler.unary_unary

            async def uu(request: Any, context: grpc.aio.ServicerContext) -> Any:
                start = time.perf_counter()
                failed = True
                try:
                    res = await inner(request, context)
                    failed = False
                    return res
                finally:
                    done(context, start, failed)

            return grpc.unary_unary_rpc_method_handler(
                uu, handler.request_deserializer, handler.response_serializer
            )
        if handler.unary_stream is not None:
            inner_s = handler.unary_stream

            async def us(request: Any, context: grpc.aio.ServicerContext) -> Any:
                start = time.perf_counter()
                failed = True
                try:
                    async for item in inner_s(request, context):
                        yield item
                    failed = False
                finally:
                    done(context, start, failed)

            return grpc.unary_stream_rpc_method_handler(
                us, handler.request_deserializer, handler.response_serializer
            )
        return handler
