"""LangGraph tasks executed by remote workers over a NATS JetStream work queue.

Owner process (drives the Pregel loop)::

    executor = RemoteExecutor(infra_settings, checkpointer, owner_id=runtime_id)
    await executor.start()
    async with executor.run(config, graph_id="g", run_id=run_id) as cfg:
        async for chunk in graph.astream(inp, cfg, durability="sync", ...):
            ...
    await executor.stop()

Worker process (same graph code)::

    worker = TaskWorker(infra_settings, {"g": graph}, checkpointer, worker_id="w1")
    await worker.start()
    ...
    await worker.stop()

What runs where, how remote tasks stream and how their subgraphs behave is described
in ``_owner`` (owner side, including which nodes stay on the owner and why) and
``_worker`` (event forwarding, the task's trace span). In short: a remote task's stream
events (custom, messages-mode tokens with their metadata, subgraph events) reach the
owner's ``astream`` while the task runs, with the namespaces and metadata a local task's
would have; interrupts, resume maps, ``Command.PARENT`` and errors inside its subgraphs
behave as in-process; ``@task`` calls it makes are run by the owner's Pregel loop (saved,
replayed on resume and streamed as for a local node) and answered to the worker.
"""

from runtime_svc.remote._errors import RemoteTaskError, TaskDeadLetteredError
from runtime_svc.remote._owner import (
    REMOTE_METADATA_KEY,
    RemoteExecutor,
    RemoteMode,
    RemoteRun,
    RunStats,
)
from runtime_svc.remote._queue import TaskQueueSettings, ensure_task_queue
from runtime_svc.remote._wire import SealedSerde
from runtime_svc.remote._worker import TaskWorker

__all__ = [
    "REMOTE_METADATA_KEY",
    "RemoteExecutor",
    "RemoteMode",
    "RemoteRun",
    "RemoteTaskError",
    "RunStats",
    "SealedSerde",
    "TaskDeadLetteredError",
    "TaskQueueSettings",
    "TaskWorker",
    "ensure_task_queue",
]
