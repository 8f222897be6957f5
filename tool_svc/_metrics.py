"""Prometheus metrics of the tool tier (the autoscaler's signal is in-flight invocations)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from mesh_core.telemetry import LATENCY_BUCKETS

__all__ = [
    "IDEMPOTENCY_STORE_ERRORS",
    "TOOL_ERRORS",
    "TOOL_INFLIGHT",
    "TOOL_INVOCATIONS",
    "TOOL_LATENCY",
    "TOOL_QUEUED",
]

TOOL_INFLIGHT = Gauge(
    "lgmesh_tool_inflight",
    "Tool invocations running now on this replica, by tool (the autoscaling signal).",
    ["tool"],
)
TOOL_QUEUED = Gauge(
    "lgmesh_tool_queued",
    "Tool invocations waiting for a free concurrency slot, by tool.",
    ["tool"],
)
TOOL_LATENCY = Histogram(
    "lgmesh_tool_invocation_seconds",
    "Time from receiving an invocation to its outcome (queueing included), by tool and outcome.",
    ["tool", "outcome"],
    buckets=LATENCY_BUCKETS,
)
TOOL_INVOCATIONS = Counter(
    "lgmesh_tool_invocations_total",
    "Tool invocations by tool and outcome "
    "(ok, tool_error, replayed, timeout, busy, invalid_argument, unavailable).",
    ["tool", "outcome"],
)
TOOL_ERRORS = Counter(
    "lgmesh_tool_errors_total",
    "Failed tool invocations by tool and kind (tool_error, timeout, busy, invalid_argument, "
    "unavailable, internal).",
    ["tool", "kind"],
)
IDEMPOTENCY_STORE_ERRORS = Counter(
    "lgmesh_tool_idempotency_store_errors_total",
    "Redis errors while reading or recording idempotent results.",
    ["op"],
)
