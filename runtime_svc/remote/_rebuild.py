"""Rebuild a task on a worker exactly as the owner's Pregel loop built it.

Every private LangGraph API the remote executor relies on is imported here or in
``_owner.py``; ``tests/contract/test_langgraph_private_api.py`` and
``tests/unit/test_remote_langgraph_hooks.py`` pin them.

The worker loads the checkpoint the owner derived the task from (saved before the
task was published), hydrates the channels with ``achannels_from_checkpoint`` and
calls ``prepare_single_task`` with the owner's task id as checksum: if both sides
don't compute the same id (different graph code, different checkpoint) the task is
refused instead of running something else.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    CheckpointTuple,
    PendingWrite,
    copy_checkpoint,
)
from langgraph.config import get_config
from langgraph.pregel import Pregel
from langgraph.pregel.protocol import StreamProtocol
from langgraph.runtime import Runtime
from langgraph.types import PregelExecutableTask

from runtime_svc.langgraph_api import (
    CONF,
    CONFIG_KEY_CALL,
    CONFIG_KEY_CHECKPOINT_ID,
    CONFIG_KEY_CHECKPOINT_NS,
    CONFIG_KEY_DURABILITY,
    CONFIG_KEY_RESUME_MAP,
    CONFIG_KEY_RESUMING,
    CONFIG_KEY_RUNTIME,
    CONFIG_KEY_STREAM,
    CONFIG_KEY_THREAD_ID,
    INPUT,
    NS_SEP,
    NULL_TASK_ID,
    PULL,
    PUSH,
    RESUME,
    PregelTaskWrites,
    StreamMessagesHandler,
    achannels_from_checkpoint,
    apply_writes,
    checkpoint_null_version,
    prepare_single_task,
    read_task_statuses,
)
from runtime_svc.remote._errors import RemoteTaskError
from runtime_svc.remote._wire import EventChannel, TaskRequest

__all__ = [
    "CheckpointMissingError",
    "EventSink",
    "load_checkpoint",
    "null_resume_left",
    "rebuild_task",
    "saved_output",
]

#: receives a task's stream events as they happen: (channel, namespace, mode, payload)
EventSink = Callable[[EventChannel, tuple[str, ...], str, Any], None]


class CheckpointMissingError(Exception):
    """The checkpoint a task names isn't readable (yet): redeliver later."""


def checkpoint_config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        CONF: {
            CONFIG_KEY_THREAD_ID: thread_id,
            CONFIG_KEY_CHECKPOINT_NS: checkpoint_ns,
            CONFIG_KEY_CHECKPOINT_ID: checkpoint_id,
        }
    }


async def load_checkpoint(
    checkpointer: BaseCheckpointSaver[Any], req: TaskRequest
) -> CheckpointTuple:
    saved = await checkpointer.aget_tuple(
        checkpoint_config(req.thread_id, req.checkpoint_ns, req.checkpoint_id)
    )
    if saved is None or saved.checkpoint["id"] != req.checkpoint_id:
        raise CheckpointMissingError(
            f"checkpoint {req.checkpoint_id} of thread {req.thread_id} not found"
        )
    return saved


def saved_output(saved: CheckpointTuple, task_id: str) -> list[tuple[str, Any]] | None:
    """The output writes already saved for this task, if it finished before."""
    writes = [w for w in (saved.pending_writes or ()) if w[0] == task_id]
    status = read_task_statuses(writes).get(task_id)
    if status is None or not status.output:
        return None
    return list(status.output)


def _task_path(path: Sequence[Any]) -> tuple[Any, ...]:
    if len(path) >= 2 and path[0] == PUSH and isinstance(path[1], int):
        return (PUSH, path[1])
    if len(path) >= 2 and path[0] == PULL and isinstance(path[1], str):
        return (PULL, path[1])
    raise RemoteTaskError(f"task path {list(path)!r} can't run remotely")


async def rebuild_task(
    graph: Pregel[Any, Any, Any, Any],
    checkpointer: BaseCheckpointSaver[Any],
    saved: CheckpointTuple,
    req: TaskRequest,
    *,
    events: EventSink,
    call: Callable[..., Any] | None = None,
) -> PregelExecutableTask:
    """The owner's task, rebuilt with a config that behaves like the owner's task config:
    the run's stream (custom writer, messages handler, subgraph stream) goes to
    ``events``, and what LangGraph hands down to subgraphs (resume map, resuming flag,
    durability) is the owner's."""
    # a copy: concurrent tasks of one step share the loaded tuple
    checkpoint = copy_checkpoint(saved.checkpoint)
    migrate = getattr(graph, "_migrate_checkpoint", None)
    if migrate is not None:
        migrate(checkpoint)
    channels, managed = await achannels_from_checkpoint(
        graph.channels,
        checkpoint,
        saver=checkpointer,
        config=saved.config,
    )
    # The owner's loop applies the checkpoint's null-task writes (a Command's update and
    # goto, saved on the checkpoint when a run starts from it) to its channels before it
    # prepares the step's tasks, without saving a new checkpoint: do the same here, with
    # the owner's copy of them when it sent one (its background save may still be going)
    null_writes = (
        [(str(c), v) for c, v in req.null_writes]
        if req.null_writes is not None
        else [(w[1], w[2]) for w in (saved.pending_writes or ()) if w[0] == NULL_TASK_ID]
    )
    if null_writes:
        apply_writes(
            checkpoint,
            channels,
            [PregelTaskWrites((), INPUT, null_writes, [])],
            checkpointer.get_next_version,
            graph.trigger_to_nodes,
        )
    pending: list[PendingWrite] = []
    if req.resume:
        pending.append((req.task_id, RESUME, list(req.resume)))
    if req.null_resume is not None:
        pending.append((NULL_TASK_ID, RESUME, req.null_resume))

    def stream_writer(chunk: Any) -> None:
        # as the root graph's writer: the namespace of the (sub)graph the writer runs in
        ns = get_config()[CONF][CONFIG_KEY_CHECKPOINT_NS].split(NS_SEP)[:-1]
        events("custom", tuple(ns), "custom", chunk)

    runtime = Runtime(context=req.context, store=graph.store, stream_writer=stream_writer)
    conf: dict[str, Any] = {
        **req.configurable,
        CONFIG_KEY_THREAD_ID: req.thread_id,
        CONFIG_KEY_CHECKPOINT_NS: req.checkpoint_ns,
        CONFIG_KEY_RUNTIME: runtime,
        CONFIG_KEY_CALL: call or _no_call,
    }
    if req.resuming is not None:
        conf[CONFIG_KEY_RESUMING] = req.resuming
    if req.durability is not None:
        conf[CONFIG_KEY_DURABILITY] = req.durability
    if req.stream_modes:
        conf[CONFIG_KEY_STREAM] = StreamProtocol(
            lambda c: events("stream", tuple(c[0]), c[1], c[2]),
            set(req.stream_modes),  # type: ignore[arg-type]
        )
    config: RunnableConfig = {
        CONF: conf,
        "metadata": dict(req.metadata),
        "recursion_limit": req.recursion_limit,
    }
    if req.messages:
        parent_ns = tuple(req.messages_parent_ns) if req.messages_parent_ns is not None else None
        handler = StreamMessagesHandler(
            lambda c: events("messages", tuple(c[0]), c[1], c[2]),
            req.messages_subgraphs,
            parent_ns=parent_ns,
        )
        config["callbacks"] = [handler]
    checkpoint_id_bytes = binascii.unhexlify(checkpoint["id"].replace("-", ""))
    try:
        task = prepare_single_task(
            _task_path(req.task_path),
            req.task_id,
            checkpoint=checkpoint,
            checkpoint_id_bytes=checkpoint_id_bytes,
            checkpoint_null_version=checkpoint_null_version(checkpoint),
            pending_writes=pending,
            processes=graph.nodes,
            channels=channels,
            managed=managed,
            config=config,
            step=req.step,
            stop=req.stop,
            for_execution=True,
            store=graph.store,
            checkpointer=checkpointer,
            manager=None,
            retry_policy=graph.retry_policy,
            cache_policy=graph.cache_policy,
        )
    except AssertionError as exc:
        raise RemoteTaskError(
            f"task id mismatch for {req.task_name!r}: worker graph code or checkpoint "
            f"differs from the owner's ({exc})",
            task_id=req.task_id,
        ) from None
    if not isinstance(task, PregelExecutableTask) or task.id != req.task_id:
        raise RemoteTaskError(
            f"task {req.task_name!r} ({req.task_id}) can't be rebuilt from checkpoint "
            f"{req.checkpoint_id} on this worker",
            task_id=req.task_id,
        )
    if req.resume_map:
        # not given to prepare_single_task: req.resume already holds what the owner's
        # scratchpad took from the map for this task; subgraphs of the task read it here
        task.config[CONF][CONFIG_KEY_RESUME_MAP] = req.resume_map
    return task


def null_resume_left(scratchpad: Any) -> bool | None:
    """Whether the run's null resume value (a scalar ``Command(resume=...)``) is still
    there for the task of ``scratchpad`` to take; ``None`` if that can't be told.

    ``PregelScratchpad.get_null_resume(False)`` returns the value even after an
    ``interrupt()`` (of the task or of one of its ``@task`` calls, which share the
    list of pending writes) consumed it, so this looks at the list it closes over.
    """
    fn = getattr(scratchpad, "get_null_resume", None)
    code, closure = getattr(fn, "__code__", None), getattr(fn, "__closure__", None)
    if code is None or closure is None:
        return None
    cells = dict(zip(code.co_freevars, closure, strict=False))
    try:
        write = cells["null_resume_write"].cell_contents
        pending = cells["pending_writes"].cell_contents
        parent = cells["parent_scratchpad"].cell_contents
    except (KeyError, ValueError):
        return None
    if write is None:
        return null_resume_left(parent) if parent is not None else False
    return any(w is write for w in pending)


def _no_call(*_args: Any, **_kwargs: Any) -> Any:
    raise RemoteTaskError(
        "a @task was called inside a node running on a remote worker that can't take "
        'the owner\'s answers; give this node metadata {"lgmesh_remote": False}'
    )
