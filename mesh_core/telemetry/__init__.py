"""Prometheus metrics (and, when configured, OpenTelemetry tracing) for every service."""

from mesh_core.telemetry._metrics import (
    LATENCY_BUCKETS,
    GrpcMetricsInterceptor,
    start_metrics_server,
)
from mesh_core.telemetry._tracing import (
    TRACE_HEADERS,
    Tracing,
    TracingServerInterceptor,
    TracingSettings,
    current_tracing,
    extract_nats_headers,
    inject_nats_headers,
    setup_tracing,
    trace_metadata,
    tracing_client_interceptors,
)

__all__ = [
    "LATENCY_BUCKETS",
    "TRACE_HEADERS",
    "GrpcMetricsInterceptor",
    "Tracing",
    "TracingServerInterceptor",
    "TracingSettings",
    "current_tracing",
    "extract_nats_headers",
    "inject_nats_headers",
    "setup_tracing",
    "start_metrics_server",
    "trace_metadata",
    "tracing_client_interceptors",
]
