"""Prometheus metrics of remote task execution."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "REMOTE_TASKS",
    "WORKER_INFLIGHT",
    "WORKER_QUEUE_PENDING",
    "WORKER_TASKS",
    "WORKER_TASK_SECONDS",
]

REMOTE_TASKS = Counter(
    "lgmesh_runtime_remote_tasks_total",
    "Tasks an owner sent to the remote task queue, by graph and outcome "
    "(ok, interrupt, error, dead, cancelled). Per-run counts are on RemoteRun.stats.",
    ["graph_id", "outcome"],
)
WORKER_INFLIGHT = Gauge(
    "lgmesh_worker_inflight_tasks",
    "Tasks a worker is running right now.",
    ["worker_id"],
)
WORKER_QUEUE_PENDING = Gauge(
    "lgmesh_worker_queue_pending",
    "Tasks waiting in the task queue (JetStream consumer num_pending), as last seen "
    "by this worker: the scaling signal for workers.",
)
WORKER_TASKS = Counter(
    "lgmesh_worker_tasks_total",
    "Task deliveries a worker handled, by outcome "
    "(ok, skipped, interrupt, error, dead, cancelled, retry).",
    ["worker_id", "outcome"],
)
WORKER_TASK_SECONDS = Histogram(
    "lgmesh_worker_task_seconds",
    "Wall time of one task delivery on a worker (rebuild + run + reply).",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
