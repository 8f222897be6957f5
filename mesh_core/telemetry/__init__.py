"""Prometheus metrics (and, when configured, OpenTelemetry tracing) for every service."""

from mesh_core.telemetry._metrics import GrpcMetricsInterceptor, start_metrics_server

__all__ = ["GrpcMetricsInterceptor", "start_metrics_server"]
